"""The mock provider: deterministic, scriptable answers in providers' wire formats, no API key."""
