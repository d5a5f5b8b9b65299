"""H.264 in MP4 through PyAV: stills in, frames out, a repeated still converted only once; an
optional soundtrack muxed alongside as AAC."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import av
from av.video.frame import VideoFrame
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from pocdojo.media.video.model import FPS, HEIGHT, WIDTH
from pocdojo.media.video.soundtrack import Soundtrack

PIXEL_FORMAT: Final = "yuv420p"
KEYFRAME_SECONDS: Final = 2


# Slideshow frames are mostly exact repeats, so x264's per-frame overhead, not the picture
# content, is what costs. Measured on two cores, these settings encode about three times as
# many frames per second as plain "veryfast" with CRF, for a similar file size:
# - constant QP instead of CRF skips the look-ahead analysis and adaptive quantisation done
#   for every frame (I-frames still get a lower QP through x264's default ip-ratio);
# - no B-frames, one reference, full-pixel diamond search: a repeat still encodes as skip
#   blocks, and dissolves and wipes have no motion to find. Sub-pixel search alone would
#   cost a quarter more time per frame, for interpolating every reference frame.
# Scene-cut detection is off so keyframes come every KEYFRAME_SECONDS, which players need
# to seek.
def x264_options(fps: int) -> dict[str, str]:
    """The encoder settings above for a video of ``fps`` frames per second."""
    return {
        "preset": "veryfast",
        "qp": "21",
        "x264-params": ":".join(
            (
                f"keyint={KEYFRAME_SECONDS * fps}",
                f"min-keyint={fps}",
                "scenecut=0",
                "bframes=0",
                "rc-lookahead=0",
                "mbtree=0",
                "weightp=0",
                "me=dia",
                "subme=0",
                "ref=1",
            )
        ),
    }


X264_OPTIONS: Final = x264_options(FPS)


def _rgb_frame(image: Image.Image) -> VideoFrame:
    frame = VideoFrame(image.width, image.height, "rgb24")
    plane = frame.planes[0]
    if plane.line_size != image.width * 3:
        # Padded rows: PyAV's own (slower, untyped) copy handles them.
        padded: VideoFrame = VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
        return padded
    # One copy of the whole buffer: several times faster than VideoFrame.from_image.
    plane.update(image.tobytes())
    return frame


def video_frame(image: Image.Image) -> VideoFrame:
    """An RGB ``image`` as an encoder-ready frame: BT.709 YUV 4:2:0, as HD players expect."""
    return _rgb_frame(image).reformat(
        format=PIXEL_FORMAT,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
    )


Planes = tuple[Image.Image, Image.Image, Image.Image]


@dataclass(frozen=True)
class Picture:
    """A still converted for the encoder once, with its Y, U and V planes as images.

    Transitions work on the planes: blending or cutting them costs a fraction of drawing
    in RGB and converting every in-between frame.

    Attributes:
        frame: The encoder-ready frame, written as is for every repeat.
        planes: Luma at full size and the two chroma planes at half size, mode "L".
    """

    frame: VideoFrame
    planes: Planes


def picture(image: Image.Image) -> Picture:
    """Convert an RGB ``image`` (see :func:`video_frame`) and keep its planes."""
    frame = video_frame(image)
    y, u, v = (
        Image.frombuffer("L", (p.width, p.height), bytes(p), "raw", "L", p.line_size, 1)
        for p in frame.planes
    )
    return Picture(frame, (y, u, v))


def frame_from_planes(planes: Planes) -> VideoFrame:
    """An encoder-ready frame made of three plane images shaped like a :class:`Picture`'s."""
    frame = VideoFrame(planes[0].width, planes[0].height, PIXEL_FORMAT)
    frame.colorspace = int(Colorspace.ITU709)
    frame.color_range = int(ColorRange.MPEG)
    for plane, image in zip(frame.planes, planes, strict=True):
        data = image.tobytes()
        if plane.line_size != image.width:
            padding = bytes(plane.line_size - image.width)
            rows = range(0, len(data), image.width)
            data = b"".join(data[row : row + image.width] + padding for row in rows)
        plane.update(data)
    return frame


def yuv(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """``color`` in the frames' YUV: BT.709 coefficients, limited (16..235) range."""
    r, g, b = color
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (
        round(16 + 219 * luma / 255),
        round(128 + 224 * (b - luma) / 1.8556 / 255),
        round(128 + 224 * (r - luma) / 1.5748 / 255),
    )


class Mp4Writer:
    """Writes frames to an H.264 MP4 file at the video's size, with an optional soundtrack.

    Use as a context manager: a clean exit flushes the encoders and finishes the file; an
    exception closes it as is (the caller throws the file away).
    """

    def __init__(self, path: Path, *, fps: int = FPS, audio: Path | None = None) -> None:
        """Open ``path`` for writing (the format is MP4 whatever the file name).

        Args:
            path: The file to write.
            fps: Frames per second.
            audio: A file whose first audio stream becomes the video's AAC track, written as
                the frames reach its time so the two streams interleave in the file.
        """
        # faststart moves the index to the front so browsers play before the download ends.
        self._container = av.open(
            str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        stream = self._container.add_stream("libx264", rate=fps, options=x264_options(fps))
        stream.width = WIDTH
        stream.height = HEIGHT
        stream.pix_fmt = PIXEL_FORMAT
        stream.colorspace = int(Colorspace.ITU709)
        stream.color_primaries = int(ColorPrimaries.BT709)
        stream.color_trc = int(ColorTrc.BT709)
        stream.color_range = int(ColorRange.MPEG)
        self._stream = stream
        self.fps = fps
        self.frames = 0
        self._soundtrack: Soundtrack | None = None
        if audio is not None:
            try:
                self._soundtrack = Soundtrack(audio, self._container)
            except BaseException:
                self._container.close()
                raise

    def write(self, frame: VideoFrame, repeat: int = 1) -> None:
        """Append ``frame`` ``repeat`` times.

        The encoder copies each frame's pixels when it receives it, so one converted frame
        serves every repeat; only its timestamp changes.
        """
        for _ in range(repeat):
            frame.pts = self.frames
            self.frames += 1
            self._container.mux(self._stream.encode(frame))
        if self._soundtrack is not None:
            self._soundtrack.write_until(self.frames / self.fps)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            # The file is being thrown away: an error closing it must not hide the cause.
            with contextlib.suppress(av.FFmpegError, OSError):
                if self._soundtrack is not None:
                    self._soundtrack.close()
                self._container.close()
            return
        try:
            self._container.mux(self._stream.encode(None))
            if self._soundtrack is not None:
                self._soundtrack.finish()
        finally:
            if self._soundtrack is not None:
                self._soundtrack.close()
            self._container.close()
