"""The mock's one form reader (``mock/multipart.py``) as clients meet it over HTTP: a form the
OpenAI operations read (files) and one the image planners read (edits), well-formed and not."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from tests.conftest import Upstream

BOUNDARY = "fastgateformtest"
BEARER = {"Authorization": "Bearer k", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def body(*parts: tuple[str, str | None, bytes], closed: bool = True) -> bytes:
    """Parts as (name, filename or None, value), delimited as RFC 7578 says."""
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: image/png\r\n" if filename else ""
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + value + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if closed else b"")


async def post(upstream: Upstream, path: str, data: bytes) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(str(upstream.server.make_url(path)), data=data, headers=BEARER) as resp,
    ):
        return resp.status, msgspec.json.decode(await resp.read())


async def test_a_file_upload_is_read_by_name(upstream: Upstream) -> None:
    status, answer = await post(
        upstream, "/v1/files", body(("purpose", None, b"user_data"), ("file", "a.txt", b"hello"))
    )
    assert status == 200, answer
    assert (answer["object"], answer["filename"], answer["bytes"]) == ("file", "a.txt", 5)


async def test_a_form_cut_before_its_closing_boundary_is_a_400(upstream: Upstream) -> None:
    cut = body(("purpose", None, b"user_data"), ("file", "a.txt", b"hello"), closed=False)
    status, answer = await post(upstream, "/v1/files", cut)
    assert status == 400
    assert "closing boundary" in answer["error"]["message"]


async def test_an_edit_reads_every_repeated_image(upstream: Upstream) -> None:
    png = b"\x89PNG\r\n\x1a\n"
    one = body(("model", None, b"gpt-image-1"), ("prompt", None, b"a hat"), ("image[]", "a.png", png))
    two = body(
        ("model", None, b"gpt-image-1"),
        ("prompt", None, b"a hat"),
        ("image[]", "a.png", png),
        ("image[]", "b.png", png),
    )
    (status, single), (status2, double) = [await post(upstream, "/v1/images/edits", f) for f in (one, two)]
    assert status == status2 == 200, (single, double)
    per_image = single["usage"]["input_tokens_details"]["image_tokens"]
    assert per_image > 0
    assert double["usage"]["input_tokens_details"]["image_tokens"] == 2 * per_image


async def test_an_edit_whose_form_is_cut_is_refused_for_what_it_lacks(upstream: Upstream) -> None:
    form = body(("prompt", None, b"a hat"), ("image", "a.png", b"\x89PNG"), closed=False)
    status, answer = await post(upstream, "/v1/images/edits", form)
    assert status == 400
    assert answer["error"]["param"] in ("prompt", "image"), answer
