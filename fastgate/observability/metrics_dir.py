"""The per-run directory of prometheus-client's multiprocess mode (``--workers N``).

The supervisor makes it before the workers start (they inherit ``PROMETHEUS_MULTIPROC_DIR``,
which prometheus-client reads when it is imported), empties it of a previous run's files, tells
prometheus-client when a worker died (its live gauges go; its counters stay in the sums, as a
counter must never go back) and removes it at exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fastgate.observability.metrics import MULTIPROC_ENV


class MetricsDir:
    def __init__(self, parent: str | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"fastgate-metrics-{os.getpid()}-", dir=parent))

    def __enter__(self) -> MetricsDir:
        for stale in self.path.iterdir():
            stale.unlink()
        os.environ[MULTIPROC_ENV] = str(self.path)
        return self

    def worker_died(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.path))

    def __exit__(self, *exc: object) -> None:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(self.path, ignore_errors=True)
