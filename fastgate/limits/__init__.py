"""Rate limits and budgets per gateway key and per virtual key."""
