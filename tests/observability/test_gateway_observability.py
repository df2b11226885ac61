"""A request through a real gateway shows up in the metrics, the access log and the answer's
headers (timing, cost, the gateway key's rate limits)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fastgate.limits.prices import Pricing
from fastgate.schema.openai import Usage
from tests.conftest import Gateway, Upstream, config_target, openai_headers

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}
ADMIN = {"Authorization": "Bearer admin-secret"}
SECRET = "sk-test-do-not-log-123456"
COST_HEADER = "x-fastgate-response-cost"


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the one series of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def scrape(gateway: Gateway) -> str:
    resp = await gateway.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


def log_lines(path: Path, gateway: Gateway) -> list[dict[str, Any]]:
    observability = gateway.app.observability
    assert observability is not None and observability.log is not None
    observability.log.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
async def logged(make_gateway: Any, tmp_path: Path) -> tuple[Gateway, Path]:
    path = tmp_path / "access.log"
    return await make_gateway(access_log=str(path), metrics_models=("gpt-4o-mini",)), path


async def test_a_request_in_metrics_log_and_headers(logged: tuple[Gateway, Path], upstream: Upstream) -> None:
    gateway, path = logged
    headers = {**openai_headers(upstream, key=SECRET), "x-portkey-trace-id": "trace-abc"}
    for _ in range(3):
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 200
    body = await resp.json()
    timing = resp.headers["Server-Timing"]
    assert re.fullmatch(r'gateway;dur=[\d.]+;desc="fastgate overhead", upstream;dur=[\d.]+', timing)
    usage = body["usage"]
    expected = Pricing().cost(
        "openai", body["model"], Usage(usage["prompt_tokens"], usage["completion_tokens"])
    )
    assert expected is not None and float(resp.headers[COST_HEADER]) == pytest.approx(expected)

    metrics = await scrape(gateway)
    labels = {"route": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o-mini"}
    assert sample(metrics, "fastgate_requests_total", status_class="2xx", cache="DISABLED", **labels) == 3
    genai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
    }
    assert sample(metrics, "gen_ai_client_operation_duration_seconds_count", **genai) == 3
    assert sample(metrics, "gen_ai_server_time_to_first_token_seconds_count", **genai) == 3
    tokens = sample(metrics, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **genai)
    assert tokens == 3 * usage["prompt_tokens"]
    assert sample(metrics, "fastgate_tokens_total", type="output") == 3 * usage["completion_tokens"]
    assert sample(metrics, "fastgate_cost_usd_total", provider="openai") == pytest.approx(3 * expected)
    assert sample(metrics, "fastgate_overhead_duration_seconds_count", route="/v1/chat/completions") == 3
    assert SECRET not in metrics

    lines = log_lines(path, gateway)
    assert len(lines) == 3
    line = lines[-1]
    assert line["trace_id"] == "trace-abc" and line["status"] == 200 and line["provider"] == "openai"
    assert line["model"] == "gpt-4o-mini" and line["attempts"] == 1 and line["option"] == "config"
    assert line["input_tokens"] == usage["prompt_tokens"] and line["cost"] == pytest.approx(expected)
    assert line["total_ms"] >= line["overhead_ms"] >= 0 and line["ttfb_ms"] > 0
    assert line["client"].startswith("127.0.0.1:")
    assert SECRET not in path.read_text()


async def test_models_off_the_allow_list_are_other(logged: tuple[Gateway, Path], upstream: Upstream) -> None:
    gateway, _ = logged
    for i in range(3):
        chat = {**CHAT, "model": f"client-chosen-{i}"}
        assert (await gateway.post("/v1/chat/completions", chat, openai_headers(upstream))).status == 200
    metrics = await scrape(gateway)
    assert "client-chosen" not in metrics
    assert sample(metrics, "fastgate_requests_total", model="other") == 3


async def test_errors_and_fallbacks_are_counted(logged: tuple[Gateway, Path], upstream: Upstream) -> None:
    gateway, path = logged
    bad = await gateway.post("/v1/chat/completions", data=b"{not json", headers=openai_headers(upstream))
    assert bad.status == 400
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [config_target(upstream, "a", status=503), config_target(upstream, "b")],
    }
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": json.dumps(config)})
    assert resp.status == 200
    metrics = await scrape(gateway)
    assert sample(metrics, "fastgate_requests_total", status_class="4xx") == 1
    assert sample(metrics, "fastgate_fallbacks_total", provider="openai") == 1
    lines = log_lines(path, gateway)
    assert [line["status"] for line in lines] == [400, 200]
    assert lines[0]["error"] == "invalid_request_error"
    assert lines[1]["attempts"] == 2 and lines[1]["option"] == "config.targets[1]"


async def test_a_stream_is_timed_to_its_end_and_counts_its_usage(
    logged: tuple[Gateway, Path], upstream: Upstream
) -> None:
    gateway, path = logged
    chat = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    resp = await gateway.post("/v1/chat/completions", chat, openai_headers(upstream))
    assert resp.status == 200
    assert "Server-Timing" in resp.headers and COST_HEADER not in resp.headers  # cost known at the end
    text = await resp.text()
    assert text.rstrip().endswith("data: [DONE]")
    line = log_lines(path, gateway)[-1]
    assert line["stream"] is True and line["output_tokens"] > 0 and line["cost"] > 0
    metrics = await scrape(gateway)
    assert sample(metrics, "fastgate_tokens_total", type="output") == line["output_tokens"]


async def test_text_format(make_gateway: Any, tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "access.txt"
    gateway = await make_gateway(access_log=str(path), log_format="text")
    headers = {**openai_headers(upstream), "x-portkey-trace-id": "t-1"}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    observability = gateway.app.observability
    assert observability is not None and observability.log is not None
    observability.log.flush()
    (line,) = path.read_text().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 200 /v1/chat/completions trace=t-1 ", line)
    assert "provider=openai model=gpt-4o-mini" in line and "overhead_ms=" in line


async def test_a_key_pasted_as_the_model_is_redacted(
    logged: tuple[Gateway, Path], upstream: Upstream
) -> None:
    gateway, path = logged
    chat = {**CHAT, "model": "sk-proj-abcdefghijklmnop1234"}
    await gateway.post("/v1/chat/completions", chat, openai_headers(upstream))
    text = json.dumps(log_lines(path, gateway))
    assert "abcdefghijklmnop1234" not in text and "[REDACTED]" in text


async def test_rate_limit_headers_of_the_gateway_key(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret", access_log=None)
    created = await gateway.post("/admin/keys", {"name": "team-a", "limits": {"rpm": 5, "tpm": 1000}}, ADMIN)
    key = (await created.json())["key"]
    headers = {**openai_headers(upstream), "x-portkey-api-key": key}
    first = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert first.headers["x-ratelimit-limit-requests"] == "5"
    assert first.headers["x-ratelimit-remaining-requests"] == "4"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert re.fullmatch(r"(\d+s|1m0s)", first.headers["x-ratelimit-reset-requests"])
    used = (await first.json())["usage"]["total_tokens"]
    await gateway.app.shared.guard.drain()
    second = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert second.headers["x-ratelimit-remaining-requests"] == "3"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 1000 - used
    # Without a gateway key there is no key's limit to tell.
    plain = await make_gateway(access_log=None)
    resp = await plain.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert "x-ratelimit-limit-requests" not in resp.headers


async def test_everything_off(make_gateway: Any, upstream: Upstream) -> None:
    gateway = await make_gateway(metrics=False, access_log=None, response_headers=False)
    assert gateway.app.observability is None
    resp = await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert resp.status == 200 and "Server-Timing" not in resp.headers
    assert (await gateway.get("/metrics")).status == 404


def test_a_bad_log_format_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastgate.settings import settings_from_env

    monkeypatch.setenv("FASTGATE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="FASTGATE_LOG_FORMAT"):
        settings_from_env()
    monkeypatch.setenv("FASTGATE_LOG_FORMAT", "text")
    monkeypatch.setenv("FASTGATE_ACCESS_LOG", "off")
    settings = settings_from_env()
    assert (settings.log_format, settings.access_log) == ("text", None)


MESSAGES = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "one two"}]}


@pytest.mark.parametrize(
    ("path", "body", "provider", "usage_of"),
    [
        # Through the chat pivot: the chat answer's usage, read before it is translated.
        (
            "/v1/messages",
            MESSAGES,
            "openai",
            lambda a: (a["usage"]["input_tokens"], a["usage"]["output_tokens"]),
        ),
        # Relayed as Anthropic answered (its own usage shape).
        (
            "/v1/messages",
            MESSAGES,
            "anthropic",
            lambda a: (a["usage"]["input_tokens"], a["usage"]["output_tokens"]),
        ),
        # OpenAI's Responses API, spoken natively by the target and relayed.
        (
            "/v1/responses",
            {"model": "gpt-4o-mini", "input": "one two"},
            "openai",
            lambda a: (a["usage"]["input_tokens"], a["usage"]["output_tokens"]),
        ),
    ],
)
async def test_ingress_formats_count_their_usage(
    logged: tuple[Gateway, Path], upstream: Upstream, path: str, body: Any, provider: str, usage_of: Any
) -> None:
    gateway, log = logged
    resp = await gateway.post(path, body, openai_headers(upstream, provider))
    assert resp.status == 200, await resp.text()
    expected = usage_of(await resp.json())
    assert expected[0] > 0 and expected[1] > 0
    (line,) = log_lines(log, gateway)
    assert (line["input_tokens"], line["output_tokens"]) == expected
    assert line["route"] == path and line["provider"] == provider
    metrics = await scrape(gateway)
    assert sample(metrics, "fastgate_tokens_total", type="output") == expected[1]


async def test_requests_the_dispatcher_refuses_are_counted(logged: tuple[Gateway, Path]) -> None:
    gateway, log = logged
    assert (await gateway.get("/no/such/route")).status == 404
    (line,) = log_lines(log, gateway)
    assert (line["status"], line["route"]) == (404, "unmatched")
    metrics = await scrape(gateway)
    assert sample(metrics, "fastgate_requests_total", route="unmatched", status_class="4xx") == 1


async def test_a_429_says_which_limit_refused_it(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret", access_log=None)
    created = await gateway.post("/admin/keys", {"name": "team-b", "limits": {"rpm": 1}}, ADMIN)
    headers = {**openai_headers(upstream), "x-portkey-api-key": (await created.json())["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    refused = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert refused.status == 429
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"(\d+s|1m0s)", refused.headers["x-ratelimit-reset-requests"])
    scraped = await gateway.get("/metrics", ADMIN)  # behind the admin token once there is one
    assert sample(await scraped.text(), "fastgate_requests_total", status_class="4xx") == 1
