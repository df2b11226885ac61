"""Portkey's default checks (``plugins/default``), one module per kind: text, structured JSON,
request, transforming, and those that call out (``remote``, ``jwt``)."""
