"""Video rendering with PyAV and Pillow (the yearly videos)."""
