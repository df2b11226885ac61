"""The SSRF policy holds for Realtime sessions and streamed uploads: a refused custom host is a
400 before any connection (for Realtime, before the client is upgraded)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import Gateway

pytestmark = pytest.mark.netns

HOSTS = ["http://169.254.169.254/v1", "http://10.0.0.5/v1", "http://[fd00:ec2::254]/v1", "http://metadata/v1"]


@pytest.mark.parametrize("host", HOSTS)
async def test_realtime_to_a_refused_host_is_a_400_without_upgrade(gateway: Gateway, host: str) -> None:
    url = f"ws://{gateway.host}:{gateway.port}/v1/realtime?model=gpt-realtime"
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": host, "Authorization": "Bearer sk"}
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, additional_headers=headers)
    assert refused.value.response.status_code == 400


@pytest.mark.parametrize("host", HOSTS)
async def test_upload_to_a_refused_host_is_a_400(gateway: Gateway, host: str) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxyz\r\n--b--\r\n'
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\nx-portkey-provider: openai\r\nx-portkey-custom-host: {host}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(head + body)
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer
