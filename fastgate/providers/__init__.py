"""Providers: where a request goes, how it is authenticated, and how its answer is mapped."""
