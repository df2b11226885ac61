"""Bytecodes per request of the gateway's in-process path, function by function.

    python -m bench.opcodes [--provider anthropic] [--stream] [--config JSON] [-n 200] [--top 40]

Runs the same path as ``bench/inproc.py`` (warmed up first), with ``sys.settrace`` counting every
bytecode each Python function executes over ``n`` requests, and prints the count per request with
the functions it went to. callgrind (``bench/instructions.py``) counts the machine instructions but
sees only the interpreter's C functions; this sees which of the gateway's functions run the
bytecodes (the interpreter's loop was ~30% of a request's instructions, 2026-12-07). A count moves
only when the code does, so it shows what a change to the Python path removed. Compiled code
(the extension, msgspec, uvloop) runs no bytecodes and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.inproc import add_request_options, new_bench

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"

Tracer = Callable[[FrameType, str, Any], Any]


def _tracer(counts: Counter[str]) -> Tracer:
    """A trace function that counts each frame's bytecodes under its function's name."""

    def call(frame: FrameType, event: str, arg: Any) -> Tracer:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        code = frame.f_code
        name = f"{code.co_filename.removeprefix(_ROOT)}:{code.co_firstlineno}:{code.co_qualname}"

        def opcode(frame: FrameType, event: str, arg: Any) -> Tracer:
            if event == "opcode":
                counts[name] += 1
            return opcode

        return opcode

    return call


async def _count(args: argparse.Namespace) -> Counter[str]:
    bench = new_bench(args.provider, args.stream, args.observability, args.config)
    await bench.start()
    counts: Counter[str] = Counter()
    try:
        await bench.run(200)  # warm: first-use work (caches, plans) is not a request's
        bench.check()
        sys.settrace(_tracer(counts))
        try:
            await bench.run(args.n)
        finally:
            sys.settrace(None)
    finally:
        await bench.stop()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_request_options(parser)
    parser.add_argument("-n", type=int, default=200, help="requests counted (default 200)")
    parser.add_argument("--top", type=int, default=40, help="functions listed (default 40)")
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    counts = asyncio.run(_count(args))
    gateway = {name: count for name, count in counts.items() if not name.startswith("bench/")}
    kind = "stream" if args.stream else "request"
    print(
        f"{args.provider}: {sum(gateway.values()) / args.n:,.0f} bytecodes per {kind} in the gateway's "
        f"functions ({sum(counts.values()) / args.n:,.0f} with the bench's fake transports)"
    )
    for name, count in Counter(gateway).most_common(args.top):
        print(f"{count / args.n:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
