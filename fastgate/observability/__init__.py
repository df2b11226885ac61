"""Logging with redaction, and trace ids."""
