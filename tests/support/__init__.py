"""Helpers the tests share: SSE parsing, recorded payloads, the replay upstream."""
