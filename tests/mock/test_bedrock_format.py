"""The mock's Bedrock Runtime, checked with botocore: its signer, its parsers, its event-stream reader."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import botocore.session
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.parsers import EventStreamJSONParser, RestJSONParser

from fastgate.mock.bedrock_format import MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY
from fastgate.mock.server import make_mock_app

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")


@pytest.fixture
async def mock_url(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    server = await aiohttp_server(make_mock_app())
    return str(server.make_url(""))


async def post(
    url: str, body: dict[str, Any], secret: str = MOCK_AWS_SECRET_ACCESS_KEY
) -> tuple[int, dict[str, str], bytes]:
    """POST signed by botocore's own SigV4 signer (independent of fastgate's)."""
    data = msgspec.json.encode(body)
    request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(MOCK_AWS_ACCESS_KEY_ID, secret), "bedrock", "us-east-1").add_auth(request)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=dict(request.headers.items())) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def converse_body(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}]}


async def test_converse_parses_with_botocore(mock_url: str) -> None:
    status, _, body = await post(f"{mock_url}/model/{MODEL}/converse", converse_body("hello"))
    assert status == 200
    parsed = RestJSONParser().parse(
        {"status_code": 200, "headers": {}, "body": body}, SERVICE.operation_model("Converse").output_shape
    )
    assert parsed["output"]["message"]["content"] == [{"text": "Mock reply to: hello"}]
    assert parsed["stopReason"] == "end_turn" and parsed["usage"]["totalTokens"] > 0


async def test_converse_stream_parses_with_botocore(mock_url: str) -> None:
    status, headers, body = await post(
        f"{mock_url}/model/{MODEL}/converse-stream", converse_body("one two three")
    )
    assert status == 200 and headers["Content-Type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    shape = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]
    events = [EventStreamJSONParser().parse(m.to_response_dict(), shape) for m in buffer]
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Mock reply to: one two three"


async def test_exception_event_parses_with_botocore(mock_url: str) -> None:
    _, _, body = await post(
        f"{mock_url}/model/{MODEL}/converse-stream",
        converse_body("x [mock fail=exception:throttlingException]"),
    )
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    *_, last = list(buffer)
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "throttlingException"
    assert msgspec.json.decode(last.payload) == {"message": "mock throttlingException mid-stream"}


@pytest.mark.parametrize(
    ("auth", "kind"),
    [
        (None, "MissingAuthenticationTokenException"),
        ("wrong-secret", "InvalidSignatureException"),
    ],
)
async def test_bad_signatures_are_refused(mock_url: str, auth: str | None, kind: str) -> None:
    url = f"{mock_url}/model/{MODEL}/converse"
    if auth is None:
        async with aiohttp.ClientSession() as session, session.post(url, json=converse_body("x")) as resp:
            status, headers = resp.status, dict(resp.headers)
    else:
        status, headers, _ = await post(url, converse_body("x"), secret=auth)
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith(kind + ":")


async def test_converse_validation_like_bedrock(mock_url: str) -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "  "}]}]}
    status, headers, raw = await post(f"{mock_url}/model/{MODEL}/converse", body)
    assert status == 400 and headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert "blank" in msgspec.json.decode(raw)["message"]
    body = {"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]}]}
    status, _, raw = await post(f"{mock_url}/model/{MODEL}/converse", body)
    assert status == 400 and "toolConfig" in msgspec.json.decode(raw)["message"]
