"""pocdojo: a realtime-first collaboration server."""

__version__ = "0.1.0"
