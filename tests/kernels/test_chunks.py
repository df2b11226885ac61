"""ChunkWriter's frames cut from one encoded template are the chunks msgspec would write."""

from __future__ import annotations

import msgspec
import pytest

from fastgate._transforms import ChunkWriter
from fastgate.schema.openai import ChatCompletionChunk, ChunkChoice, Delta

DONE = b"data: [DONE]\n\n"


def encoded(writer: ChunkWriter, delta: Delta, finish_reason: str | None) -> bytes:
    provider = writer.provider if isinstance(writer.provider, str) else msgspec.UNSET
    chunk = ChatCompletionChunk(
        writer.id, writer.created, writer.model, [ChunkChoice(0, delta, finish_reason)], provider=provider
    )
    if writer.include_usage:
        chunk.usage = None
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("provider", [None, "anthropic"])
@pytest.mark.parametrize("ident", ["msg_01", 'id "quoted" \\ é 🦊'])
@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", 'odd "reason"'])
def test_template_frames_equal_encoded_chunks(
    include_usage: bool, provider: str | None, ident: str, reason: str
) -> None:
    writer = ChunkWriter(ident, "model/ü", provider, include_usage)
    assert writer.role() == encoded(writer, Delta(role="assistant", content=""), None)
    assert writer.content('a "b"\n') == encoded(writer, Delta(content='a "b"\n'), None)
    assert writer.role() == encoded(writer, Delta(content=""), None)  # the role goes out once
    assert writer.finish(reason) == encoded(writer, Delta(), reason) + DONE


def test_finish_without_a_role_chunk_carries_the_role() -> None:
    writer = ChunkWriter("id", "m")
    assert writer.finish("stop") == encoded(writer, Delta(role="assistant"), "stop") + DONE
