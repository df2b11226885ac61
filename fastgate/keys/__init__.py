"""Gateway API keys and virtual keys: what a client may use, and provider secrets it never sees."""
