"""Tests that check a refusal run inside a network namespace with only a loopback interface.

If a regression let the gateway connect where it must not, the packet has nowhere to go: the
test fails on the status (a 502 from a failed connect instead of the 400 refusal) and nothing
leaves the machine. ``test_in_netns.py`` re-runs the ``netns``-marked tests in such a
namespace; run directly, outside one, they are deselected.
"""

from __future__ import annotations

import socket

import pytest


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if only_loopback():
        return
    outside = [item for item in items if item.get_closest_marker("netns")]
    if outside:
        config.hook.pytest_deselected(items=outside)
        items[:] = [item for item in items if not item.get_closest_marker("netns")]
