"""Soak: many mixed requests through one gateway worker against ``fastgate mock``, run by hand.

    python bench/soak.py                      # 200,000 requests (a few minutes)
    python bench/soak.py --requests 20000     # a quicker look

The gateway runs as its own process (one worker, uvloop, the real upstream client) with one
extra route, ``/_soak/stats``, that counts its asyncio tasks; its memory and file descriptors
are read from ``/proc``. The mix: chat, streams, scripted upstream errors, bad requests, clients
that disconnect mid-stream and clients that give up before the answer. After a warm-up the
baseline is taken; at the end, with the client gone, RSS must have grown under 5 %, tasks and
descriptors must be back to the baseline, no 5xx may have come that was not scripted, and
the gateway must have logged no traceback.
Only loopback traffic; every loop is bounded by the request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 64
#: Seconds at rest before the baseline and the final measure: the upstream pool's idle timeout
#: (15 s) and its sweep, plus slack.
IDLE = 32.0
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "tell me something short"}]}


# -- the gateway process -------------------------------------------------------------------------


def serve_gateway(port: int) -> None:
    """One gateway worker, as ``fastgate serve`` runs it, plus a task-count route."""
    import msgspec

    from fastgate.gateway.app import _install_uvloop, make_app, serve
    from fastgate.server.messages import Request, Response
    from fastgate.settings import Settings

    app = make_app(Settings(port=port))

    async def stats(request: Request) -> Response:
        return Response(200, msgspec.json.encode({"tasks": len(asyncio.all_tasks())}))

    app.router.add("GET", "/_soak/stats", stats)
    _install_uvloop()
    asyncio.run(serve(app))


# -- measuring ------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def snapshot(pid: int, url: str) -> dict[str, int]:
    # A fresh connection that is closed at once, so the probe leaves nothing behind.
    async with aiohttp.ClientSession() as session, session.get(url + "/_soak/stats") as resp:
        tasks = (await resp.json())["tasks"]
    await asyncio.sleep(0.5)
    return {"rss_kib": rss_kib(pid), "fds": open_fds(pid), "tasks": tasks}


# -- the load -------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.unexpected: list[str] = []


async def one(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], kind: str, tally: Tally
) -> None:
    tally.kinds[kind] += 1
    post = url + "/v1/chat/completions"
    if kind == "chat":
        body, expect = CHAT, 200
    elif kind == "stream":
        body, expect = {**CHAT, "stream": True}, 200
    elif kind == "upstream_429":
        body, expect = {**CHAT, "mock": {"status": 429}}, 429
    elif kind == "upstream_503":
        body, expect = {**CHAT, "mock": {"status": 503}}, 503
    elif kind == "upstream_drop":
        body, expect = {**CHAT, "mock": {"fail": "drop"}}, 502
    elif kind == "bad_request":
        async with session.post(
            post, data=b"{nope", headers={**headers, "Content-Type": "application/json"}
        ) as resp:
            await resp.read()
            record(tally, kind, resp.status, 400)
        return
    elif kind == "disconnect_mid_stream":
        async with session.post(
            post, json={**CHAT, "stream": True, "mock": {"chunks": 20}}, headers=headers
        ) as resp:
            await resp.content.readuntil(b"\n\n")
            record(tally, kind, resp.status, 200)
            resp.close()  # drop the connection with the stream unread
        return
    elif kind == "disconnect_early":
        body = {**CHAT, "mock": {"delay_ms": 100}}
        try:
            async with asyncio.timeout(0.01):
                async with session.post(post, json=body, headers=headers) as resp:
                    await resp.read()
        except TimeoutError:
            return
        record(tally, kind, resp.status, 200)
        return
    else:
        raise ValueError(kind)
    async with session.post(post, json=body, headers=headers) as resp:
        data = await resp.read()
        record(tally, kind, resp.status, expect)
        if kind == "stream" and not data.endswith(b"data: [DONE]\n\n"):
            tally.unexpected.append(f"{kind}: stream did not end with [DONE]")


def record(tally: Tally, kind: str, status: int, expect: int) -> None:
    tally.statuses[status] += 1
    if status != expect and (status >= 500 or len(tally.unexpected) < 20):
        tally.unexpected.append(f"{kind}: {status} (expected {expect})")


MIX = (
    ["chat"] * 50
    + ["stream"] * 25
    + ["upstream_429"] * 4
    + ["upstream_503"] * 3
    + ["upstream_drop"] * 3
    + ["bad_request"] * 5
    + ["disconnect_mid_stream"] * 5
    + ["disconnect_early"] * 5
)


async def load(url: str, headers: dict[str, str], count: int, tally: Tally, seed: int) -> float:
    rng = random.Random(seed)
    kinds = iter([rng.choice(MIX) for _ in range(count)])
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for kind in kinds:
                await one(session, url, headers, kind, tally)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.monotonic() - started


# -- the run ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def soak(total: int, warmup: int, checkpoints: int) -> dict[str, Any]:
    with tempfile.TemporaryFile() as gw_log:
        return await _soak(total, warmup, checkpoints, gw_log)


async def _soak(total: int, warmup: int, checkpoints: int, gw_log: IO[bytes]) -> dict[str, Any]:
    mock_port, gw_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mock = subprocess.Popen(
        [sys.executable, "-m", "fastgate", "mock", "--port", str(mock_port)], cwd=ROOT, env=env
    )
    gw = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-gateway", str(gw_port)],
        cwd=ROOT,
        env=env,
        stderr=gw_log,
    )
    try:
        url = f"http://127.0.0.1:{gw_port}"
        wait_ready(f"http://127.0.0.1:{mock_port}/_mock/requests")
        wait_ready(url + "/health")
        headers = {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1",
            "Authorization": "Bearer sk-soak",
        }
        tally = Tally()
        seconds = await load(url, headers, warmup, tally, seed=0)
        # Both ends are measured at rest: past the pool's 15 s idle timeout, so the kept-alive
        # upstream connections have been swept and only what leaked would remain.
        await asyncio.sleep(IDLE)
        baseline = await snapshot(gw.pid, url)
        samples = []
        left, seed = total - warmup, 1
        step = max(1, left // checkpoints)
        while left > 0:
            n = min(step, left)
            seconds += await load(url, headers, n, tally, seed=seed)
            seed += 1
            left -= n
            samples.append({"done": total - left, **await snapshot(gw.pid, url)})
            print(json.dumps(samples[-1]), flush=True)
        await asyncio.sleep(IDLE)
        final = await snapshot(gw.pid, url)
        # Clear the mock's request log so its own memory does not matter here.
        async with aiohttp.ClientSession() as session:
            await session.delete(f"http://127.0.0.1:{mock_port}/_mock/requests")
        growth = (final["rss_kib"] - baseline["rss_kib"]) / baseline["rss_kib"]
        gw_log.seek(0)
        logged = gw_log.read().decode("utf-8", "replace")
        fives = sum(n for status, n in tally.statuses.items() if status >= 500)
        return {
            "requests": total,
            "seconds": round(seconds, 1),
            "requests_per_second": round(total / seconds),
            "kinds": dict(tally.kinds),
            "statuses": dict(sorted(tally.statuses.items())),
            "5xx_all": fives,
            "unexpected": tally.unexpected[:20],
            "baseline": baseline,
            "final": final,
            "rss_growth_percent": round(growth * 100, 2),
            "gateway_tracebacks": logged.count("Traceback"),
            "samples": samples,
        }
    finally:
        for proc in (gw, mock):
            proc.send_signal(signal.SIGTERM)
        for proc in (gw, mock):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--checkpoints", type=int, default=9)
    parser.add_argument("--serve-gateway", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway is not None:
        serve_gateway(args.serve_gateway)
        return 0
    result = asyncio.run(soak(args.requests, min(args.warmup, args.requests // 2), args.checkpoints))
    print(json.dumps(result, indent=2))
    ok = (
        result["rss_growth_percent"] < 5
        and result["final"]["fds"] <= result["baseline"]["fds"]
        and result["final"]["tasks"] <= result["baseline"]["tasks"]
        and not result["unexpected"]
        and not result["gateway_tracebacks"]
    )
    print("SOAK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
