"""Leak accounting for fault tests: the gateway and mock run in this process, so what they leave
behind shows up in this process's asyncio tasks and file descriptors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_tasks() -> int:
    return len(asyncio.all_tasks())


async def settles(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether ``check`` becomes true within ``timeout`` (cleanup runs on later loop turns)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Baseline:
    """Tasks and descriptors now; ``back()`` says whether they have returned to (at most) that."""

    def __init__(self) -> None:
        self.tasks = live_tasks()
        self.fds = open_fds()

    async def back(self) -> None:
        assert await settles(lambda: live_tasks() <= self.tasks), f"tasks {live_tasks()} > {self.tasks}"
        assert await settles(lambda: open_fds() <= self.fds), f"fds {open_fds()} > {self.fds}"
