"""fastgate: a fast, Portkey-compatible AI gateway with a compiled hot path."""

from fastgate import _transforms  # noqa: F401  (required: the package does not import without it)

__version__ = "0.1.0"
