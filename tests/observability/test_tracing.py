"""OpenTelemetry traces through a real gateway, read with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fastgate.observability.tracing import Tracer
from tests.conftest import Gateway, Upstream, config_target, openai_headers
from tests.support.sse import openai_chunks

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a secret prompt"}]}
FAST = {"retry_base_ms": 1.0, "retry_cap_ms": 4.0}
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"


class Traced:
    """A gateway tracing to the SDK's in-memory exporter; ``spans()`` exports what is finished."""

    def __init__(self, gateway: Gateway, tracer: Tracer, exporter: InMemorySpanExporter) -> None:
        self.gateway, self.tracer, self.exporter = gateway, tracer, exporter

    def spans(self) -> tuple[ReadableSpan, ...]:
        self.tracer.flush()  # what the exporting thread does every second
        return self.exporter.get_finished_spans()


async def traced(make_gateway: Any, ratio: float = 1.0, content: bool = False) -> Traced:
    gateway: Gateway = await make_gateway(access_log=None, **FAST)
    exporter = InMemorySpanExporter()
    app = gateway.app
    assert app.observability is not None
    tracer = app.observability.tracer = Tracer(ratio, content, exporter)
    app.gateway.pipeline = app._pipeline()  # the stage is built with the tracer it uses
    return Traced(gateway, tracer, exporter)


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is kind]


async def test_server_and_client_spans_with_genai_attributes(make_gateway: Any, upstream: Upstream) -> None:
    t = await traced(make_gateway)
    headers = {**openai_headers(upstream), "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}
    resp = await t.gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200
    body = await resp.json()
    spans = t.spans()
    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    # The client's trace continues: same trace id, the server span's parent is the client's span.
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_PARENT
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert server.name == "POST /v1/chat/completions" and client.name == "chat gpt-4o-mini"
    attrs = dict(client.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == body["model"]
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["stop"]  # type: ignore[arg-type]
    assert attrs["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["fastgate.option_index"] == "config"
    server_attrs = dict(server.attributes or {})
    assert server_attrs["http.response.status_code"] == 200
    assert server_attrs["fastgate.retry_count"] == 0
    # Content is never recorded unless turned on.
    assert not any("messages" in k for k in (*attrs, *server_attrs))
    # The upstream got the client span's own traceparent.
    sent = upstream.requests[-1]["headers"]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{format(client.context.span_id, '016x')}-01"
    assert client.start_time is not None and server.start_time is not None
    assert server.start_time <= client.start_time <= (client.end_time or 0) <= (server.end_time or 0)


async def test_a_span_per_attempt_with_retries_and_fallback(make_gateway: Any, upstream: Upstream) -> None:
    t = await traced(make_gateway)
    flaky = {**config_target(upstream, "a", fail_first=1, key="t1"), "retry": {"attempts": 2}}
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [config_target(upstream, "down", status=503), flaky],
    }
    resp = await t.gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": json.dumps(config)})
    assert resp.status == 200
    spans = t.spans()
    clients = by_kind(spans, SpanKind.CLIENT)
    statuses = [dict(c.attributes or {})["http.response.status_code"] for c in clients]
    assert statuses == [503, 503, 200]
    assert [dict(c.attributes or {})["fastgate.option_index"] for c in clients] == [
        "config.targets[0]",
        "config.targets[1]",
        "config.targets[1]",
    ]
    assert dict(clients[0].attributes or {})["error.type"] == "503"
    (server,) = by_kind(spans, SpanKind.SERVER)
    attrs = dict(server.attributes or {})
    assert (attrs["fastgate.retry_count"], attrs["fastgate.fallback_hops"]) == (1, 1)


async def test_sampling_ratio_zero_records_nothing(make_gateway: Any, upstream: Upstream) -> None:
    t = await traced(make_gateway, ratio=0.0)
    assert (await t.gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 200
    assert t.spans() == ()


async def test_content_only_when_turned_on(make_gateway: Any, upstream: Upstream) -> None:
    t = await traced(make_gateway, content=True)
    assert (await t.gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 200
    (client,) = by_kind(t.spans(), SpanKind.CLIENT)
    attrs = dict(client.attributes or {})
    assert "a secret prompt" in str(attrs["gen_ai.input.messages"])
    assert "Mock reply" in str(attrs["gen_ai.output.messages"])


async def test_an_error_before_routing_still_has_its_server_span(
    make_gateway: Any, upstream: Upstream
) -> None:
    t = await traced(make_gateway)
    resp = await t.gateway.post("/v1/chat/completions", data=b"[", headers=openai_headers(upstream))
    assert resp.status == 400
    (server,) = t.spans()
    assert dict(server.attributes or {})["error.type"] == "invalid_request_error"


@pytest.mark.timeout(60)
def test_off_by_default_and_not_even_imported() -> None:
    # redis-py imports the OpenTelemetry API for its own metrics: the tracer, the SDK's trace
    # package and the exporter are what tracing would bring.
    code = (
        "import sys\n"
        "from fastgate.gateway.app import make_app\n"
        "from fastgate.settings import Settings\n"
        "app = make_app(Settings(port=0))\n"
        "assert app.observability is not None and app.observability.tracer is None\n"
        "names = ('fastgate.observability.tracing', 'opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_stream_has_its_finish_reasons_and_usage(make_gateway: Any, upstream: Upstream) -> None:
    t = await traced(make_gateway)
    chat = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    resp = await t.gateway.post("/v1/chat/completions", chat, openai_headers(upstream))
    assert resp.status == 200
    chunks = openai_chunks(await resp.read())
    usage = next(c["usage"] for c in chunks if c.get("usage"))
    (client,) = by_kind(t.spans(), SpanKind.CLIENT)
    attrs = dict(client.attributes or {})
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["stop"]  # type: ignore[arg-type]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
