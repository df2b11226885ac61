"""README's table of routes per provider says what the gateway does: each cell's first word
(relayed, mapped, served: the provider serves the route; passthrough; refused) is held to the
provider registry and the gateway's own choice (``handlers.passthrough_instead``), and every
provider slug has exactly one row."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from fastgate.errors import GatewayError
from fastgate.gateway.handlers import passthrough_instead
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import PROVIDERS

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- routes-table:"
#: A header cell's paths, and the endpoints they name.
_PATHS = {
    "/v1/files": Endpoint.FILES,
    "/v1/uploads": Endpoint.UPLOADS,
    "/v1/batches": Endpoint.BATCHES,
    "/v1/audio/speech": Endpoint.SPEECH,
    "/v1/audio/transcriptions": Endpoint.TRANSCRIPTIONS,
    "/translations": Endpoint.TRANSLATIONS,
    "/v1/images/edits": Endpoint.IMAGE_EDITS,
    "/variations": Endpoint.IMAGE_VARIATIONS,
    "/v1/realtime": Endpoint.REALTIME,
    "/v1/images/generations": Endpoint.IMAGES,
    "/v1/rerank": Endpoint.RERANK,
    "/v1/moderations": Endpoint.MODERATIONS,
}
_SERVED = ("relayed", "mapped", "served")
_REST = "every other"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@cache
def _table() -> tuple[list[list[Endpoint]], list[list[str]]]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(MARK)) + 1
    header = _cells(lines[start])
    columns = [[_PATHS[p] for p in re.findall(r"`([^`]+)`", cell)] for cell in header[1:]]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return columns, rows


def _what(slug: str, endpoint: Endpoint) -> str:
    provider = PROVIDERS[slug]
    if endpoint in provider.endpoints:
        return "served"
    try:
        passthrough_instead(provider, endpoint)
    except GatewayError:
        return "refused"
    return "passthrough"


def _said(cell: str) -> str:
    word = cell.split()[0].rstrip(":")
    assert word in (*_SERVED, "passthrough", "refused"), cell
    return "served" if word in _SERVED else word


@cache
def _rows() -> tuple[dict[str, list[str]], list[str]]:
    """The rows that name their slugs, by slug, and the row of the rest of the OpenAI-compatible
    providers, which stands for every slug no other row names."""
    _, rows = _table()
    named: dict[str, list[str]] = {}
    rest = None
    for row in rows:
        if row[0].startswith(_REST):
            rest = row
            continue
        for slug in re.findall(r"`([^`]+)`", row[0]):
            assert slug not in named, f"{slug} has two rows"
            named[slug] = row
    assert rest is not None
    for slug in re.findall(r"`([^`]+)`", rest[0]):
        assert slug not in named, f"{slug} is named in its own row and among the rest"
    return named, rest


def test_every_named_slug_is_a_provider() -> None:
    named, _ = _rows()
    assert not set(named) - set(PROVIDERS)


def test_every_route_is_a_column() -> None:
    columns, _ = _table()
    assert {e for column in columns for e in column} == set(_PATHS.values())


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_row_says_what_the_gateway_does(slug: str) -> None:
    columns, _ = _table()
    named, rest = _rows()
    row = named.get(slug, rest)
    for endpoints, cell in zip(columns, row[1:], strict=True):
        for endpoint in endpoints:
            assert _what(slug, endpoint) == _said(cell), (slug, endpoint.value, cell)
