"""Virtual-key secrets sealed at rest with AES-GCM (FASTGATE_SECRET_KEY)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fastgate.cli import main
from fastgate.errors import GatewayError
from fastgate.keys.models import new_virtual_key
from fastgate.keys.registry import KeyRegistry
from fastgate.keys.sealing import Sealer, SealError, new_secret_key
from fastgate.store.records import FileRecords
from tests.conftest import Upstream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_seal_and_open() -> None:
    sealer = Sealer(new_secret_key())
    vk = new_virtual_key(
        "bedrock", "", options={"aws_secret_access_key": "AWSSECRET123", "aws_region": "eu-west-1"}
    )
    sealed = sealer.seal(vk)
    assert (sealed.secret, sealed.options) == ("", {})
    assert sealed.sealed is not None
    assert "AWSSECRET123" not in sealed.sealed
    assert sealer.open(sealed) == vk
    with pytest.raises(SealError, match="does not open"):
        Sealer(new_secret_key()).open(sealed)
    # Bound to its slug: the blob moved onto another record does not open.
    other = new_virtual_key("bedrock", "")
    with pytest.raises(SealError):
        sealer.open(msgspec.structs.replace(other, sealed=sealed.sealed))


def test_a_bad_key_is_refused() -> None:
    for key in ("short", "!!!not-base64!!!"):
        with pytest.raises(SealError, match="32 bytes"):
            Sealer(key)


async def test_gateway_seals_on_write_and_opens_on_read(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    key = new_secret_key()
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="t", secret_key=key)
    resp = await gateway.post(
        "/admin/virtual-keys",
        {
            "provider": "openai",
            "secret": "sk-sealed-555",
            "custom_host": upstream.url,
            "options": {"openai_project": "p"},
        },
        {"Authorization": "Bearer t"},
    )
    slug = (await resp.json())["slug"]
    stored = (tmp_path / "keys.json").read_text()
    assert "sk-sealed-555" not in stored
    assert json.loads(stored)["virtual_keys"][slug]["sealed"].startswith("v1:")
    answer = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-virtual-key": slug})
    assert answer.status == 200
    assert upstream.requests[-1]["headers"]["Authorization"] == "Bearer sk-sealed-555"
    # Another process without the key loads the records, but cannot use the sealed one.
    without = KeyRegistry(FileRecords(tmp_path))
    await without.refresh()
    assert slug in without.locked and slug not in without.virtual
    with pytest.raises(GatewayError, match="FASTGATE_SECRET_KEY") as refused:
        without.resolve(slug)
    assert refused.value.status == 500
    opened = KeyRegistry(FileRecords(tmp_path), sealer=Sealer(key))
    await opened.refresh()
    assert opened.virtual[slug].secret == "sk-sealed-555"


def test_cli_seals_with_the_key_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["keys", "new-secret-key"]) == 0
    key = capsys.readouterr().out.strip()
    monkeypatch.setenv("FASTGATE_SECRET_KEY", key)
    monkeypatch.setenv("SECRET", "sk-from-cli-31")
    args = [
        "virtual-keys",
        "add",
        "--data-dir",
        str(tmp_path),
        "--provider",
        "openai",
        "--secret-env",
        "SECRET",
    ]
    assert main(args) == 0
    assert "sk-from-cli-31" not in (tmp_path / "keys.json").read_text()
    slug = json.loads(capsys.readouterr().out)["slug"]
    monkeypatch.delenv("FASTGATE_SECRET_KEY")
    # Listing needs no secret: the sealed record is listed as such.
    assert main(["virtual-keys", "list", "--data-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["slug"], listed["sealed"]) == (slug, True)
