"""SigV4 against botocore's SigV4Auth: same request, same time, same body → same Authorization."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fastgate.providers.aws_sigv4 import AwsCredentials, sign, signing_key

NOW = datetime.datetime(2026, 11, 21, 23, 59, 58, tzinfo=datetime.UTC)
BODY = b'{"messages":[{"role":"user","content":[{"text":"hello \xc3\xa9"}]}]}'


def botocore_headers(url: str, headers: dict[str, str], body: bytes, creds: AwsCredentials, region: str):
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.token), "bedrock", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    "url",
    [
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke",
        "http://127.0.0.1:8123/model/us.meta.llama3-1-8b-instruct-v1:0/converse-stream",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy/converse",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse",
        "https://example.com:443/model/m/converse?b=2&a=1",
    ],
)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////session+token="])
def test_authorization_matches_botocore(url: str, token: str | None) -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    region = url.split(".")[1] if "amazonaws" in url else "us-east-1"
    headers = {"Content-Type": "application/json", "Accept": " application/json,  text/plain "}
    ours = sign("POST", url, headers, BODY, creds, region, "bedrock", now=NOW)
    theirs = botocore_headers(url, headers, BODY, creds, region)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == "20261121T235958Z"
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")
    assert "X-Amz-Content-SHA256" not in ours


def test_signature_depends_on_body_and_secret() -> None:
    creds = AwsCredentials("AKID", "secret")
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    base = sign("POST", url, {}, BODY, creds, "us-east-1", "bedrock", now=NOW)["Authorization"]
    assert base != sign("POST", url, {}, BODY + b" ", creds, "us-east-1", "bedrock", now=NOW)["Authorization"]
    other = AwsCredentials("AKID", "secret2")
    assert base != sign("POST", url, {}, BODY, other, "us-east-1", "bedrock", now=NOW)["Authorization"]


def test_signing_key_is_cached_per_day_region_service() -> None:
    signing_key.cache_clear()
    creds = AwsCredentials("AKID", "secret")
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    for body in (b"a", b"b", b"c"):
        sign("POST", url, {}, body, creds, "us-east-1", "bedrock", now=NOW)
    assert signing_key.cache_info().misses == 1 and signing_key.cache_info().hits == 2
    sign("POST", url, {}, b"a", creds, "us-west-2", "bedrock", now=NOW)
    assert signing_key.cache_info().misses == 2
