"""Instructions per request of the gateway's in-process path, counted by callgrind.

    python -m bench.instructions [--provider anthropic] [--stream [--paced]] [--config JSON]
                                 [--top 40] [--exclusive] [--observability off|defaults|traced]

Runs ``python -m bench.inproc`` under valgrind's callgrind twice (n=1000 and n=3000 requests)
and divides the difference by 2000: start-up, imports and warm-up cancel out, and what is left
is the cost of one request, in instructions. Unlike time on a shared machine it does not move
with other tenants, so it tells a 2% change apart; it is blind to cache misses and the kernel
(sockets are fake here), which ``bench/load.py`` measures. Needs valgrind
(``apt-get install -y valgrind``); a run takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.inproc import add_request_options

REPO = Path(__file__).resolve().parent.parent
SHORT, LONG = 1000, 3000
_LINE = re.compile(r"\s*([\d,]+) \([^)]*\)\s+(.*)")


def _callgrind(out: Path, requests: int, inproc_args: list[str]) -> None:
    # Threads apart (out-01 is the event loop's): the tracer's exporting thread is not the
    # request path.
    argv = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
    argv.append(sys.executable)
    argv += ["-m", "bench.inproc", "-n", str(requests), "--repeat", "1", *inproc_args]
    # A fixed hash seed: string hashing otherwise moves the count by ~0.5% from run to run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)


def _loop_thread(profile: Path) -> Path:
    """The event loop's part of a profile written thread by thread (the first thread's)."""
    return profile.with_name(profile.name + "-01")


def functions_of(profile: Path, inclusive: bool) -> tuple[int, dict[str, int]]:
    """Total instructions and instructions per function of one callgrind profile."""
    argv = ["callgrind_annotate", "--threshold=100", "--auto=no", str(profile)]
    if inclusive:
        argv.insert(1, "--inclusive=yes")
    return parse_annotate(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def parse_annotate(text: str) -> tuple[int, dict[str, int]]:
    """Total and per-function counts from ``callgrind_annotate``'s report."""
    total = 0
    per: dict[str, int] = {}
    for line in text.splitlines():
        if (m := _LINE.match(line)) is None:
            continue
        count, name = int(m.group(1).replace(",", "")), re.sub(r" \[.*\]$", "", m.group(2))
        if "PROGRAM TOTALS" in name:
            total = count
        else:
            per[name] = per.get(name, 0) + count
    return total, per


def per_request(
    provider: str,
    stream: bool = False,
    inclusive: bool = True,
    config: str = "",
    paced: bool = False,
    observability: str = "defaults",
) -> tuple[float, dict[str, float]]:
    """Instructions per request (or stream, or stream paced one event per read) of the
    in-process path, and per function; ``config``: sent as ``x-portkey-config``."""
    inproc_args = [
        "--provider",
        provider,
        "--observability",
        observability,
        *(["--stream"] if stream else []),
        *(["--paced"] if paced else []),
        "--config",
        config,
    ]
    # Bytecode compiled once up front, so neither run compiles while it is counted.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "fastgate", "bench"], cwd=REPO, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp, "short"), Path(tmp, "long")
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(_callgrind, p, n, inproc_args) for p, n in ((short, SHORT), (long, LONG))]
            for run in runs:
                run.result()
        (total_short, few), (total_long, many) = (
            functions_of(_loop_thread(p), inclusive) for p in (short, long)
        )
    names = many.keys() | few.keys()
    deltas = {name: (many.get(name, 0) - few.get(name, 0)) / (LONG - SHORT) for name in names}
    return (total_long - total_short) / (LONG - SHORT), deltas


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_request_options(parser)
    parser.add_argument("--paced", action="store_true", help="with --stream: one event per read")
    parser.add_argument("--top", type=int, default=30, help="functions to list (0: none)")
    parser.add_argument("--exclusive", action="store_true", help="list functions by their own cost")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install -y valgrind", file=sys.stderr)
        return 2
    if args.paced and not args.stream:
        parser.error("--paced goes with --stream")
    count, deltas = per_request(
        args.provider,
        args.stream,
        inclusive=not args.exclusive,
        config=args.config,
        paced=args.paced,
        observability=args.observability,
    )
    kind = ("paced stream" if args.paced else "stream") if args.stream else "request"
    print(f"{args.provider}: {count:,.0f} instructions per {kind} (in process)")
    for name, value in sorted(deltas.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{value:10,.0f}  {name[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
