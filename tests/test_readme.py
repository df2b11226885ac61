"""Every fenced block of README.md, run as a newcomer runs it, in order, against real processes.

Bash blocks run in bash (``-e -o pipefail``), Python blocks with the environment's Python, TOML
blocks are checked with ``fastgate check-config``, JSON blocks must parse; ``text`` blocks are
shown output. The only changes to a block are the provider keys and hosts: ``sk-...``-style
placeholders become a test key, the ports of the servers the README starts become free ones, and
every other loopback host (a local model, say) becomes the mock provider this test runs. Blocks run
in a scratch folder beside a ``.venv`` that is this test's own environment.

HTML comments just before a block tell this test what it is:

- ``<!-- readme-test: skip REASON -->``: not run (installs, the whole suite, minutes of load);
- ``<!-- readme-test: server URL -->``: a server, left running in the background once URL answers;
- ``<!-- readme-test: file NAME -->``: written to NAME for the blocks after it;
- ``<!-- readme-test: expect TEXT -->``: TEXT must be in what the block prints.

A block fails on a non-zero status or when it prints an OpenAI error object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
import pytest

from tests.conftest import Upstream

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Skipped blocks allowed: each one is an example no test proves.
MAX_SKIPPED = 4
LANGUAGES = frozenset({"bash", "python", "toml", "json", "text"})
GATEWAY_PORT = 8787  # `fastgate serve` without --port
KEY = "sk-readme-test-key"

_MARK = re.compile(r"<!-- readme-test: (\w+)(?: (.*?))? -->")
_FENCE = re.compile(r"^```(\S*)\s*$")
_PLACEHOLDER_KEY = re.compile(r"\b(?:sk-ant|sk|gsk|pk)[-_]\.\.\.")
_LOOPBACK = re.compile(r"\b(?:127\.0\.0\.1|localhost):(\d{2,5})\b")
_PORT_FLAG = re.compile(r"--port (\d{2,5})\b")
_PUBLIC_URL = re.compile(r"https?://(?!127\.0\.0\.1|localhost|\[::1\])[\w.-]+")
#: A command of the venv's run bare, as if the venv were activated (the README says to prefix them).
_BARE_COMMAND = re.compile(r"(?:^|&&|\|\||[|;(]|\$\()\s*(?:\w+=\S*\s+)*(fastgate|pip|pytest|python)\b", re.M)
_OPENAI_ERROR = re.compile(r'"error"\s*:\s*\{')
_KEYS_COMMAND = re.compile(r"fastgate keys add|/admin/keys")


@dataclass
class Block:
    line: int
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        marks: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (mark := _MARK.fullmatch(lines[j].strip())):
            marks[mark.group(1)] = mark.group(2) or ""
            j -= 1
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        blocks.append(Block(i + 1, opened.group(1), "\n".join(lines[i + 1 : end]) + "\n", marks))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def listen_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it before a server
    the README starts binds it (seconds later)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(low // 2, low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port to listen on")


class Substitution:
    """The README's placeholders and ports → this run's key, free ports and the mock provider."""

    def __init__(self, blocks: list[Block], provider_port: int) -> None:
        #: The ports of the servers the README starts, each given a free one when first seen.
        self.servers = {GATEWAY_PORT}
        for block in blocks:
            if "server" in block.marks:
                self.servers.update(int(p) for p in _PORT_FLAG.findall(block.text))
        self.ports: dict[int, int] = {}
        self.provider_port = provider_port

    def port(self, readme_port: int) -> int:
        if readme_port not in self.servers:
            return self.provider_port  # a provider's host: the mock
        if readme_port not in self.ports:
            self.ports[readme_port] = listen_port()
        return self.ports[readme_port]

    def __call__(self, text: str) -> str:
        text = _PLACEHOLDER_KEY.sub(KEY, text)
        text = _LOOPBACK.sub(lambda m: f"127.0.0.1:{self.port(int(m.group(1)))}", text)
        return _PORT_FLAG.sub(lambda m: f"--port {self.port(int(m.group(1)))}", text)


def venv_for(workdir: Path) -> None:
    """``.venv`` in the scratch folder is the environment this test runs in."""
    if sys.prefix != sys.base_prefix:
        (workdir / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        return
    bin_dir = workdir / ".venv" / "bin"  # not a venv: commands that run this interpreter
    bin_dir.mkdir(parents=True)
    for name, run in (("python", ""), ("python3", ""), ("pip", "-m pip"), ("pytest", "-m pytest")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" {run} "$@"\n')
    (bin_dir / "fastgate").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fastgate "$@"\n')
    for path in bin_dir.iterdir():
        path.chmod(0o755)


def command(block: Block, path: Path) -> list[str]:
    if block.lang == "bash":
        return ["bash", "-e", "-o", "pipefail", str(path)]
    if block.lang == "python":
        return [".venv/bin/python", str(path)]
    return [".venv/bin/fastgate", "check-config", str(path)]  # toml


class Runner:
    def __init__(self, workdir: Path, substitute: Substitution) -> None:
        self.workdir = workdir
        self.substitute = substitute
        self.env = {
            **os.environ,
            "FASTGATE_PORT": str(substitute.port(GATEWAY_PORT)),
            "PYTHONPATH": str(ROOT),
        }
        self.servers: list[tuple[Block, asyncio.subprocess.Process, Path]] = []
        self.gateways: list[str] = []

    def script(self, block: Block) -> Path:
        text = self.substitute(block.text)
        public = _PUBLIC_URL.search(text)
        assert public is None, (
            f"{block} would reach {public.group()}: examples use placeholders the test maps"
        )
        suffix = {"bash": ".sh", "python": ".py", "toml": ".toml", "json": ".json"}[block.lang]
        path = self.workdir / block.marks.get("file", f"block-{block.line}{suffix}")
        path.write_text(text)
        return path

    async def run(self, block: Block) -> None:
        path = self.script(block)
        if block.lang == "json":
            msgspec.json.decode(path.read_bytes())
            return
        if "server" in block.marks:
            await self.start_server(block, path)
            return
        proc = await asyncio.create_subprocess_exec(
            *command(block, path),
            cwd=self.workdir,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        printed = out.decode(errors="replace")
        print(f"=== {block}\n{printed[:1500]}")
        shown = f"{block} printed:\n{printed[-3000:]}"
        assert proc.returncode == 0, f"{block} exited with {proc.returncode}; " + shown
        assert not _OPENAI_ERROR.search(printed), f"{block} answered with an error; " + shown
        if "expect" in block.marks:
            assert block.marks["expect"] in printed, (
                f"{block} did not print {block.marks['expect']!r}; " + shown
            )
        if _KEYS_COMMAND.search(block.text):
            await self.keys_gone(block)

    async def start_server(self, block: Block, path: Path) -> None:
        log = self.workdir / f"server-{block.line}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *command(block, path),
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.servers.append((block, proc, log))
        url = self.substitute(block.marks["server"])
        async with aiohttp.ClientSession() as session:
            for _ in range(300):  # 30 s
                assert proc.returncode is None, f"{block} exited: {log.read_text()[-3000:]}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{block}: {url} did not answer; {log.read_text()[-3000:]}")
        if "fastgate serve" in block.text:
            self.gateways.append(url.rsplit("/", 1)[0])

    async def keys_gone(self, block: Block) -> None:
        """A block that adds gateway keys removes them again: the examples after it send none.
        Servers see the change within a second."""
        body = {"model": "mock-small", "messages": [{"role": "user", "content": "Hi"}]}
        async with aiohttp.ClientSession() as session:
            for gateway in self.gateways:
                for _ in range(50):  # 5 s
                    async with session.post(
                        gateway + "/v1/chat/completions", json=body, headers={"x-portkey-provider": "mock"}
                    ) as resp:
                        if resp.status != 401:
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(
                        f"{block} leaves gateway keys in place: the examples after it get 401"
                    )

    async def stop(self) -> None:
        for _, proc, _ in self.servers:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for block, proc, log in self.servers:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                raise AssertionError(f"{block} did not stop on SIGTERM: {log.read_text()[-2000:]}") from None


@contextlib.asynccontextmanager
async def runner(workdir: Path, substitute: Substitution) -> AsyncIterator[Runner]:
    run = Runner(workdir, substitute)
    try:
        yield run
    finally:
        await run.stop()


def runnable(blocks: list[Block]) -> Iterator[Block]:
    for block in blocks:
        if "skip" not in block.marks and block.lang != "text":
            yield block


@pytest.mark.timeout(300)
async def test_every_readme_example_runs(tmp_path: Path, upstream: Upstream) -> None:
    venv_for(tmp_path)
    substitute = Substitution(BLOCKS, int(upstream.url.rsplit(":", 1)[1].split("/")[0]))
    async with runner(tmp_path, substitute) as run:
        for block in runnable(BLOCKS):
            await run.run(block)
    assert upstream.requests, "no example reached the provider hosts the test stands in for"


def test_few_blocks_are_skipped_and_each_says_why() -> None:
    skipped = [block for block in BLOCKS if "skip" in block.marks]
    assert all(block.marks["skip"].strip() for block in skipped), "a skipped block gives its reason"
    assert len(skipped) <= MAX_SKIPPED, [f"{b}: {b.marks['skip']}" for b in skipped]


def test_every_block_says_what_it_is_and_runs_the_venvs_commands() -> None:
    for block in BLOCKS:
        assert block.lang in LANGUAGES, f"{block}: a fence names one of {sorted(LANGUAGES)}"
        assert set(block.marks) <= {"skip", "server", "file", "expect"}, f"{block}: {block.marks}"
        if block.lang == "bash":
            bare = _BARE_COMMAND.search(block.text)
            assert bare is None, f"{block}: `{bare.group(1)}` without .venv/bin/ (one style throughout)"


def test_the_runner_reads_marks_and_substitutes_only_keys_and_hosts() -> None:
    blocks = readme_blocks(
        "<!-- readme-test: server http://127.0.0.1:8790/health -->\n"
        "```bash\n.venv/bin/fastgate serve --port 8790\n```\n\n"
        "<!-- readme-test: expect ok -->\n"
        "```bash\ncurl http://127.0.0.1:8790/ -H 'Authorization: Bearer sk-...' http://localhost:11434/v1\n```\n"
    )
    assert [(b.line, b.marks) for b in blocks] == [
        (2, {"server": "http://127.0.0.1:8790/health"}),
        (7, {"expect": "ok"}),
    ]
    substitute = Substitution(blocks, provider_port=4242)
    served = substitute(blocks[0].text)
    server = substitute.ports[8790]
    assert served == f".venv/bin/fastgate serve --port {server}\n"
    assert substitute(blocks[1].text) == (
        f"curl http://127.0.0.1:{server}/ -H 'Authorization: Bearer {KEY}' http://127.0.0.1:4242/v1\n"
    )
    assert substitute.port(8787) not in (server, 4242)
