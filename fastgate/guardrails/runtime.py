"""What checks that call out share per server: the HTTP transport, the JWKS cache, and the
tasks of ``async`` hooks still running after their answer went out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from fastgate.guardrails.jwks import JwksCache
from fastgate.guardrails.transport import HttpTransport

log = logging.getLogger(__name__)


class Runtime:
    """Built once per server; handed to every check that does I/O."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport
        self.jwks = JwksCache(transport)
        #: Running ``async`` hooks: referenced here so they are not collected half-way.
        self.background: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` after the answer, on its own; a failure is logged, never raised."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None and log.isEnabledFor(logging.WARNING):
            log.warning("async hooks failed: %r", task.exception())

    async def close(self) -> None:
        """Wait for the async hooks still running (at shutdown)."""
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
