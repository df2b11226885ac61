"""The HTTP side: the only package that knows aiohttp's web server."""
