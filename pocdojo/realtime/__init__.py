"""The aiohttp application factory, the CLI, and the WebSocket rooms."""
