"""Hostile headers and paths: no request splitting, no traversal, no 500, nothing unexpected
reaching the upstream."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tests.conftest import Gateway, Upstream, openai_headers

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
BODY = msgspec.json.encode(CHAT)


async def raw_exchange(gw: Gateway, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(request)
        await writer.drain()
    except ConnectionResetError:
        return 400, b"refused: closed while the request was being sent"
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return 400, b"refused: reset"
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


def raw_post(path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = BODY) -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: gw", b"Content-Type: application/json"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def upstream_headers(upstream: Upstream, provider: str = "openai") -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in openai_headers(upstream, provider).items()]


def injected(upstream: Upstream) -> bool:
    return any(
        "x-injected" in {k.lower() for k in r["headers"]} or "\r" in r["path"] or "\n" in r["path"]
        for r in upstream.requests
    )


@pytest.mark.parametrize(
    "header",
    [
        b"x-portkey-config",
        b"x-portkey-metadata",
        b"x-portkey-provider",
        b"x-portkey-custom-host",
        b"x-portkey-trace-id",
        b"x-portkey-forward-headers",
        b"x-portkey-request-timeout",
        b"authorization",
        b"x-portkey-openai-organization",
    ],
)
async def test_invalid_utf8_in_any_header_is_never_a_500(
    gateway: Gateway, upstream: Upstream, header: bytes
) -> None:
    value = b'{"provider": "mock", "k": "\xff\xfe"}' if header == b"x-portkey-config" else b"va\xffl\xfe"
    if header == b"x-portkey-metadata":
        value = b'{"k": "\xff"}'
    headers = [h for h in upstream_headers(upstream) if h[0].lower() != header] + [(header, value)]
    status, answer = await raw_exchange(gateway, raw_post(b"/v1/chat/completions", headers))
    assert status < 500, answer[-300:]
    if status >= 400:
        assert b'"error"' in answer


@pytest.mark.parametrize(
    "config",
    [
        {"api_key": "sk-k\r\nX-Injected: 1"},
        {"api_key": "sk-k\nX-Injected: 1"},
        {"api_key": "sk-k\x00X-Injected: 1"},
        {"openai_organization": "org\r\nX-Injected: 1"},
        {"openai_project": "p\rX-Injected: 1"},
        {"forward_headers": ["x-a\r\nX-Injected: 1"]},
    ],
)
async def test_line_breaks_in_config_values_never_split_the_upstream_request(
    gateway: Gateway, upstream: Upstream, config: dict[str, object]
) -> None:
    full = {"provider": "openai", "custom_host": upstream.url, **config}
    headers = {"x-portkey-config": msgspec.json.encode(full).decode()}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status in (200, 400), await resp.text()
    assert not injected(upstream)


@pytest.mark.parametrize(
    "custom_host", ["{url}\r\nX-Injected: 1", "{url}%0d%0aX-Injected:%201", "{url}\x00", "{url} X-Injected"]
)
async def test_line_breaks_in_custom_host_are_refused(
    gateway: Gateway, upstream: Upstream, custom_host: str
) -> None:
    config = {"provider": "openai", "custom_host": custom_host.format(url=upstream.url)}
    resp = await gateway.post(
        "/v1/chat/completions", CHAT, {"x-portkey-config": msgspec.json.encode(config).decode()}
    )
    # Refused, or (percent-encoded, so inert) sent as a path the upstream does not know.
    assert resp.status in (400, 404)
    assert not injected(upstream)


@pytest.mark.parametrize(
    "value",
    [b"a\rX-Injected: 1", b"a\nX-Injected: 1", b"a\x00b", b"a\r\n X-Injected: 1"],
    ids=["CR", "LF", "NUL", "folded"],
)
async def test_raw_line_breaks_in_incoming_headers_are_refused(
    gateway: Gateway, upstream: Upstream, value: bytes
) -> None:
    headers = [*upstream_headers(upstream), (b"x-portkey-trace-id", value)]
    status, _ = await raw_exchange(gateway, raw_post(b"/v1/chat/completions", headers))
    assert status == 400
    assert not injected(upstream)


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/models%0D%0AX-Injected:%201",
        b"/v1/models%0AX-Injected:%201",
        b"/v1/mod%20els%20HTTP/1.1%0D%0AX-Injected:%201",
        b"/v1/models?q=%0D%0AX-Injected:%201",
        b"/v1/models?q=a%20b%0d%0a",
    ],
)
async def test_encoded_line_breaks_in_a_passthrough_path_never_split_the_request(
    gateway: Gateway, upstream: Upstream, path: bytes
) -> None:
    status, answer = await raw_exchange(gateway, raw_post(path, upstream_headers(upstream)))
    assert status < 500, answer[-300:]
    assert not injected(upstream), upstream.requests[-1]


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/../admin",
        b"/v1/%2e%2e/admin",
        b"/v1/%2E%2E/%2E%2E/etc/passwd",
        b"/v1/files/..%2f..%2fadmin",
        b"/v1/files/..%5c..%5cadmin",
        b"/v1/files/%252e%252e/admin",
        b"/v1/./../admin",
        b"/v1//..//admin",
    ],
)
async def test_path_traversal_in_the_passthrough_is_refused(
    gateway: Gateway, upstream: Upstream, path: bytes
) -> None:
    status, answer = await raw_exchange(gateway, raw_post(path, upstream_headers(upstream)))
    assert status in (400, 404) or all(r["path"].startswith("/v1/") for r in upstream.requests), answer
    for record in upstream.requests:
        assert ".." not in record["path"].split("/"), record["path"]
        assert record["path"].startswith("/v1/"), record["path"]


@pytest.mark.parametrize("size", [9 * 1024, 64 * 1024, 1024 * 1024])
async def test_oversized_headers_are_refused_and_the_gateway_goes_on(
    gateway: Gateway, upstream: Upstream, size: int
) -> None:
    headers = [*upstream_headers(upstream), (b"x-portkey-metadata", b'{"k": "' + b"x" * size + b'"}')]
    status, answer = await raw_exchange(gateway, raw_post(b"/v1/chat/completions", headers))
    assert status in (400, 431), answer[:200]
    assert upstream.requests == []
    many = [*upstream_headers(upstream), *((b"x-h%d" % i, b"v") for i in range(size // 64))]
    status, _ = await raw_exchange(gateway, raw_post(b"/v1/chat/completions", many))
    assert status in (200, 400, 431)
    resp = await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert resp.status == 200


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX-Injected: 1", "/a?q=\n", "/é", "/a\x00"])
async def test_the_upstream_client_never_writes_a_broken_request_line(target: str) -> None:
    from fastgate.errors import GatewayError
    from fastgate.ssrf import HostPolicy
    from fastgate.upstream.dns import CachingResolver
    from fastgate.upstream.pool import UpstreamPool

    pool = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=1.0, read_timeout=1.0)
    with pytest.raises(GatewayError) as info:
        await pool.request("GET", "http://127.0.0.1:9" + target, {}, None)
    assert info.value.status == 400
    await pool.close()
