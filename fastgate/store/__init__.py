"""Shared state (response cache, rate limits, budgets, key records) behind one small interface,
with an in-process backend (the default) and a Redis backend (shared by workers and machines)."""
