"""The upstream client: a keep-alive pool over asyncio protocols and the compiled response parser."""
