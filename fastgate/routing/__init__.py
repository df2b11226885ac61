"""Routing: config tree → the targets to try, with retries and timeouts. Pure logic, no aiohttp."""
