"""Logging that never writes a secret.

Provider keys reach the gateway in headers and configs; a formatter that scrubs every record
catches the places a developer forgets. Records are formatted only when their level is enabled
(the logging module's own check), so the hot path pays nothing with logging off.
"""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = (
    # Authorization-style values and well-known key shapes.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{4,}"),
    re.compile(r"\b(sk|pk|rk|gsk|xai|sk-ant|AIza|AKIA|ASIA|fg)[-_A-Za-z0-9]{8,}"),  # fg-: gateway keys
    re.compile(
        r'(?i)("?(?:api[_-]?key|authorization|x-api-key|secret[_-]?access[_-]?key|aws[_-]secret[_-]access[_-]key'
        r'|session[_-]?token|access[_-]?token|password|private[_-]key)"?\s*[:=]\s*"?)[^"\s,}]+'
    ),
)


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() and m.group(1) else "") + "[REDACTED]", text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
