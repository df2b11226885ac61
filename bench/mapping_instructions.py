"""Instructions per call of Anthropic's compiled mappings alone, counted by callgrind.

    python -m bench.mapping_instructions [CASE ...]

Each case calls one mapping in a loop, under valgrind's callgrind twice (2,000 and 6,000 calls), and
reports the difference per call, as ``bench/instructions.py`` does for the whole request path: a
change to a mapping shows here without the path around it. A case ending in ``-decoded`` sends the
same JSON with one member more, whose key is written with an escape: the byte reader
(``fastgate/kernels/jsonread.pxi``) leaves such a document to the decoder, so the pair shows what
reading the bytes saves. The loop's own cost is in every figure (the ``loop`` case).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.instructions import REPO, functions_of

FEW, MANY = 2000, 6000
#: A member no reader matches (its key has an escape) and every decoder ignores.
_DECODED = b'{"\\u0074ype":0,'


def _decoded(data: bytes) -> bytes:
    return _DECODED + data[1:]


def _cases() -> dict[str, Callable[[], object]]:
    from bench.inproc import STREAM_CHUNKS, anthropic_answer, anthropic_frames
    from fastgate._transforms import AnthropicStream, anthropic_to_openai_chat

    answer = anthropic_answer(False)[0].split(b"\r\n\r\n", 1)[1]
    text = "The quick brown fox jumps over the lazy dog, then rests a while.\n" * 30
    long_answer = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 20, "output_tokens": 400},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    frames = anthropic_frames(STREAM_CHUNKS)

    def events_decoded(frame: bytes) -> bytes:
        head, data = frame.split(b"data: ", 1)
        if head in (b"event: message_start\n", b"event: message_delta\n"):
            return head + b"data: " + _decoded(data)
        return frame

    def stream(frames: list[bytes]) -> Callable[[], object]:
        first, rest = b"".join(frames[:2]), b"".join(frames[2:])

        def run() -> object:
            mapper = AnthropicStream("anthropic")
            return mapper.feed(first) + mapper.feed(rest) + mapper.finish()

        return run

    return {
        "loop": lambda: None,
        "answer": lambda: anthropic_to_openai_chat(answer, "anthropic"),
        "answer-decoded": lambda: anthropic_to_openai_chat(_decoded(answer), "anthropic"),
        "answer-2k": lambda: anthropic_to_openai_chat(long_answer, "anthropic"),
        "answer-2k-decoded": lambda: anthropic_to_openai_chat(_decoded(long_answer), "anthropic"),
        "stream": stream(frames),
        "stream-decoded": stream([events_decoded(f) for f in frames]),
    }


def _inner(case: str, calls: int) -> None:
    call = _cases()[case]
    for _ in range(calls):
        call()


def per_call(case: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        profiles = {n: Path(tmp, str(n)) for n in (FEW, MANY)}

        def run(calls: int) -> None:
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profiles[calls]}"]
            argv += [sys.executable, "-m", "bench.mapping_instructions", "--inner", case, str(calls)]
            # A fixed hash seed: string hashing otherwise moves the count from run to run.
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run, profiles))
        many, few = (functions_of(profiles[n], inclusive=False)[0] for n in (MANY, FEW))
        return (many - few) / (MANY - FEW)


def main() -> int:
    names = list(_cases())
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"any of {', '.join(names)} (default: all)")
    parser.add_argument("--inner", nargs=2, metavar=("CASE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.cases) - set(names)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.inner:
        _inner(args.inner[0], int(args.inner[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install -y valgrind", file=sys.stderr)
        return 2
    for case in args.cases or names:
        print(f"{case}: {per_call(case):,.0f} instructions per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
