"""Patterns from configs, compiled once on RE2: linear time, so no pattern can hang a worker.

Portkey runs JavaScript RegExps, which backtrack: ``(a+)+$`` on a long line of ``a`` stalls its
event loop. RE2 refuses what it cannot run in linear time (look-around, back-references); such
a pattern is refused with the config (400) instead of failing open at every request. Flags come
the JavaScript way, ``/pattern/flags`` (``regexReplace``): ``i``, ``m`` and ``s`` become RE2's
inline flags, ``g`` replaces every match instead of the first, ``u`` and ``d`` change nothing
here, ``y`` anchors the match at the start of the text.
"""

from __future__ import annotations

import re

import re2
from re2 import _re2

from fastgate.guardrails.check import ConfigError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr
#: Memory for one compiled pattern: a pattern that needs more (a{1000}{1000}) is refused.
_OPTIONS.max_mem = 8 << 20
#: Portkey's ``parseRegex``: ``/pattern/flags``.
_SLASHED = re.compile(r"^/(.+?)/([a-z]*)$", re.DOTALL)
_JS_FLAGS = frozenset("gimsuyd")
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
#: RE2's span of a group that did not match.
_NO_SPAN = (-1, -1)


class Pattern:
    """A compiled pattern with what its JavaScript flags mean for a search or a replace."""

    __slots__ = ("regex", "replace_all", "source")

    def __init__(self, regex: re2._Regexp, source: str, replace_all: bool) -> None:
        self.regex = regex
        self.source = source
        self.replace_all = replace_all

    def search(self, text: str) -> re2._Match | None:
        """``regex.search``; no match (a guardrail's usual answer) is told by RE2 itself, without
        the wrapper's generator and offsets, which only a match needs."""
        encoded = text.encode()
        if self.regex._regexp.Match(_UNANCHORED, encoded, 0, len(encoded))[0] == _NO_SPAN:
            return None
        return self.regex.search(text)

    def sub(self, replacement: str, text: str) -> tuple[str, int]:
        """The text with the match (or every match, flag ``g``) replaced literally."""
        new, count = self.regex.subn(lambda _: replacement, text, count=0 if self.replace_all else 1)
        return new, count


def compile_pattern(source: str, where: str, *, slashed: bool = False) -> Pattern:
    """RE2 for a config's pattern, or a ConfigError naming ``where`` and why RE2 refused it."""
    flags = ""
    if slashed and (m := _SLASHED.match(source)) is not None:
        body, flags = m.group(1), m.group(2)
        if not set(flags) <= _JS_FLAGS:
            raise ConfigError(f"{where}: invalid regex flags {flags!r}")
    else:
        body = source
    inline = "".join(f for f in "ims" if f in flags)
    text = f"(?{inline}){body}" if inline else body
    if "y" in flags:
        text = rf"\A(?:{text})"
    try:
        regex = re2.compile(text, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ConfigError(f"{where}: the pattern {source!r} cannot be compiled by RE2 ({reason})") from None
    return Pattern(regex, source, "g" in flags)
