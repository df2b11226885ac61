"""Circuit breaking end to end: only when a config's ``strategy.cb_config`` (or the server
config's default) asks for it; a skipped target is named in the answer and counted on /metrics.

The mock counts what each target received (each target has its own key); the breaker's clock is
the test's, so a cool-down of Portkey's minimum 30 s passes at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import openai

from fastgate.routing.breaker import LocalCircuits
from tests.conftest import Gateway, Upstream, config_target
from tests.server.test_routing import FAST, fallback, headers, keys
from tests.support.clock import Clock
from tests.support.sdk import portkey

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "break me"}]}
CB = {"failure_threshold": 2, "cooldown_interval": 30_000}
SKIPPED = "x-portkey-skipped-option-indexes"


def with_clock(gateway: Gateway) -> Clock:
    clock = Clock()
    gateway.app.gateway.breaker.states = LocalCircuits(clock)
    return clock


async def send(gateway: Gateway, config: dict[str, Any], times: int) -> list[Any]:
    answers = []
    for _ in range(times):
        resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
        await resp.read()
        answers.append(resp)
    return answers


async def test_without_cb_config_a_retrying_first_target_is_always_tried(
    make_gateway: Any, upstream: Upstream
) -> None:
    # The case: after a few failures the first target got no requests at all.
    gateway: Gateway = await make_gateway(**FAST)
    first = {**config_target(upstream, "first", status=503), "retry": {"attempts": 1}}
    config = fallback(first, config_target(upstream, "second"))
    for resp in await send(gateway, config, 8):
        assert resp.status == 200 and SKIPPED not in resp.headers
        assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert keys(upstream) == ["first", "first", "second"] * 8


async def test_without_cb_config_a_failing_nested_loadbalance_is_never_skipped(
    gateway: Gateway, upstream: Upstream
) -> None:
    inner = {
        "strategy": {"mode": "loadbalance"},
        "targets": [config_target(upstream, "a", status=500), config_target(upstream, "b", status=502)],
    }
    config = fallback(inner, config_target(upstream, "c"))
    for resp in await send(gateway, config, 8):
        assert resp.status == 200 and SKIPPED not in resp.headers
    sent = keys(upstream)
    assert sent.count("c") == 8 and len(sent) == 16 and set(sent[::2]) <= {"a", "b"}


async def test_an_open_target_is_skipped_said_in_the_answer_and_on_metrics(
    gateway: Gateway, upstream: Upstream
) -> None:
    clock = with_clock(gateway)
    config = {**fallback(config_target(upstream, "flaky", status=503), config_target(upstream, "ok"))}
    config["strategy"]["cb_config"] = CB
    first_two = await send(gateway, config, 2)
    assert all(SKIPPED not in r.headers for r in first_two)
    assert keys(upstream) == ["flaky", "ok", "flaky", "ok"]
    [third] = await send(gateway, config, 1)
    assert third.status == 200
    assert keys(upstream)[4:] == ["ok"], "an open circuit is passed over"
    assert third.headers[SKIPPED] == "config.targets[0]"
    assert third.headers["x-portkey-circuit-breaker-triggered"] == "true"
    assert third.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    scrape = await gateway.get("/metrics")
    assert scrape.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = await scrape.text()
    state = [line for line in metrics.splitlines() if line.startswith("fastgate_circuit_state{")]
    assert len(state) == 2 and any(line.endswith('target="config.targets[0]"} 1.0') for line in state)
    assert any(
        line.endswith('target="config.targets[1]"} 0.0') for line in state
    )  # floats, as prometheus-client writes them
    assert 'target="config.targets[0]"} 1' in metrics.split("fastgate_circuit_skips_total{")[1]
    assert "flaky" not in metrics and "sk-" not in metrics
    clock.now += 30.1  # Portkey: the circuit closes a cool-down after its first failure
    [after] = await send(gateway, config, 1)
    assert SKIPPED not in after.headers and keys(upstream)[5:] == ["flaky", "ok"]


async def test_failure_status_codes_decide_what_opens_a_circuit(gateway: Gateway, upstream: Upstream) -> None:
    with_clock(gateway)
    cb = {**CB, "failure_status_codes": [429]}
    server_error = fallback(config_target(upstream, "e500", status=500), config_target(upstream, "ok"))
    server_error["strategy"]["cb_config"] = cb
    assert all(SKIPPED not in r.headers for r in await send(gateway, server_error, 4))
    limited = fallback(config_target(upstream, "e429", status=429), config_target(upstream, "ok"))
    limited["strategy"]["cb_config"] = cb
    *_, last = await send(gateway, limited, 3)
    assert last.headers[SKIPPED] == "config.targets[0]"


async def test_when_every_target_is_open_all_are_tried(gateway: Gateway, upstream: Upstream) -> None:
    with_clock(gateway)
    config = fallback(config_target(upstream, "x", status=503), config_target(upstream, "y", status=503))
    config["strategy"]["cb_config"] = CB
    answers = await send(gateway, config, 3)
    assert [r.status for r in answers] == [503, 503, 503]
    assert SKIPPED not in answers[-1].headers
    assert keys(upstream) == ["x", "y"] * 3


async def test_the_portkey_sdk_config_with_cb_config(gateway: Gateway, upstream: Upstream) -> None:
    with_clock(gateway)
    config = fallback(config_target(upstream, "flaky", status=500), config_target(upstream, "ok"))
    config["strategy"]["cb_config"] = {
        "failure_threshold_percentage": 50,
        "minimum_requests": 2,
        "cooldown_interval": 60000,
    }
    async with portkey(base_url=gateway.url + "/v1", api_key="pk-unused", config=config) as client:
        for _ in range(3):
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.choices[0].message.content == "Mock reply to: hi"
    assert keys(upstream) == ["flaky", "ok", "flaky", "ok", "ok"]  # 2 of 2 failed: open


async def test_the_server_configs_default_cb_config(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = tmp_path / "fastgate.json"
    saved = fallback(config_target(upstream, "flaky", status=503), config_target(upstream, "ok"))
    own = fallback(config_target(upstream, "own-a", status=503), config_target(upstream, "own-b"))
    own["strategy"]["cb_config"] = {"failure_threshold": 5, "cooldown_interval": 30000}
    path.write_text(msgspec.json.encode({"cb_config": CB, "configs": {"main": saved, "own": own}}).decode())
    gateway: Gateway = await make_gateway(config_path=str(path))
    with_clock(gateway)
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    async with client:
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-portkey-config": "main"},
            )
    assert raw.headers[SKIPPED] == "config.targets[0]"
    assert keys(upstream) == ["flaky", "ok", "flaky", "ok", "ok"]
    metrics = await (await gateway.get("/metrics")).text()
    assert 'fastgate_circuit_skips_total{config="main",target="config.targets[0]"} 1' in metrics
    # A config's own cb_config wins over the server's (5 failures, not 2) ...
    for _ in range(3):
        resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": "own"})
        assert SKIPPED not in resp.headers
    # ... and an inline config without one gets the server's.
    inline = fallback(config_target(upstream, "in-a", status=503), config_target(upstream, "in-b"))
    *_, last = await send(gateway, inline, 3)
    assert last.headers[SKIPPED] == "config.targets[0]"


async def test_a_bad_cb_config_is_a_400_naming_the_field(gateway: Gateway, upstream: Upstream) -> None:
    config = fallback(config_target(upstream, "a"), config_target(upstream, "b"))
    config["strategy"]["cb_config"] = {"failure_threshold": 2}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "strategy.cb_config.cooldown_interval"
    assert upstream.requests == []
