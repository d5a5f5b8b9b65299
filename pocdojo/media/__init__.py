"""WebRTC recorder, audio mixing and video rendering."""
