"""Reading the server config file: TOML or JSON, and what to write instead when TOML refuses it.

The format follows the name (``.toml``, ``.json``); any other name is read by its first
character (``{``: JSON, else TOML), so ``fastgate.conf`` holding TOML is not reported as bad
JSON. The usual TOML slips (keys on the line of their ``[table]`` header, several keys on one
line) get the right spelling in the error.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

#: ``[prices.gpt-4o] input = 2.5, output = 10``: keys after a table header, on its line.
_KEYS_AFTER_HEADER = re.compile(r"^\s*\[([^\[\]]+)\]\s*(\S.*?)\s*$")
#: ``input = 2.5, output = 10``: several keys on one line, outside an inline table.
_KEYS_ON_ONE_LINE = re.compile(r"^\s*([\w.\"'-]+\s*=\s*[^,{}\[\]]+?)\s*,\s*([\w\"'-]+\s*=.*?)\s*$")
_LINE = re.compile(r"at line (\d+)")


def read_config_file(path: Path) -> Any:
    """The file's contents; a ``ValueError`` says which format was expected and what is wrong."""
    text = path.read_bytes().decode("utf-8-sig")
    if path.suffix == ".json" or (path.suffix != ".toml" and text.lstrip().startswith("{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        named = "" if path.suffix == ".toml" else " (a name not ending in .json is read as TOML)"
        raise ValueError(f"not valid TOML{named}: {exc}{toml_hint(text, str(exc))}") from None


def toml_hint(text: str, error: str) -> str:
    """The usual spelling of the line TOML stopped at, when it is one of the usual slips."""
    found = _LINE.search(error)
    lines = text.splitlines()
    if found is None or not 0 < int(found.group(1)) <= len(lines):
        return ""
    line = lines[int(found.group(1)) - 1]
    header = _KEYS_AFTER_HEADER.match(line)
    if header is not None:
        table, keys = header.groups()
        own_lines = " and ".join(f"`{k.strip()}`" for k in keys.split(","))
        return (
            f". A [table] header stands alone on its line: write `[{table}]`, then {own_lines} on "
            f"lines of their own, or in one line `{table} = {{ {keys} }}`"
        )
    several = _KEYS_ON_ONE_LINE.match(line)
    if several is not None:
        keys = [several.group(1), *several.group(2).split(",")]
        return (
            ". TOML takes one key per line: write "
            + " and ".join(f"`{k.strip()}`" for k in keys)
            + (" on lines of their own (or group them in an inline table: `name = { a = 1, b = 2 }`)")
        )
    return ""
