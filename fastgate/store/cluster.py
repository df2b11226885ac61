"""A Redis Cluster: each command to the primary that holds its key's slot, one pipelined
connection per primary.

The slot map comes from ``CLUSTER SLOTS`` on any node that answers (the seeds given, then every
node seen). A ``MOVED`` reply (the slot moved, or a replica took over) refreshes the map and the
command is sent once more to its new owner; ``ASK`` (a slot being migrated) sends it to the node
named, after ``ASKING``. A primary that cannot be reached makes the next call refresh the map
first, so a failover is followed without a restart.
Reference: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, ResponseError

from fastgate.store.base import StoreUnavailable
from fastgate.store.multiplexed import Command, Multiplexed

SLOTS = 16384
Address = tuple[str, int]


def command_key(command: Command) -> bytes | None:
    """The key a command is routed by: the first of ``EVAL``/``EVALSHA``'s keys, else the first
    argument (every command the stores send has its key there, or none, like ``PING``)."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        if int(command[2]) == 0:
            return None
        key = command[3]
    elif len(command) > 1 and name not in ("PING", "INFO", "SCRIPT"):
        key = command[1]
    else:
        return None
    return key if isinstance(key, bytes) else str(key).encode()


def _redirect(reply: object) -> tuple[bool, Address] | None:
    """``-MOVED 3999 127.0.0.1:6381`` / ``-ASK ...`` (parsed by redis-py): whether the slot
    moved for good, and the node to ask."""
    if isinstance(reply, AskError):  # MovedError is an AskError
        return isinstance(reply, MovedError), reply.node_addr
    return None


class ClusterClient:
    def __init__(
        self,
        seeds: Sequence[Address],
        connect: Callable[[Address], Multiplexed],
        *,
        known: dict[Address, Multiplexed] | None = None,
        refresh_interval: float = 0.5,
    ) -> None:
        self.seeds = list(seeds)
        self._connect = connect
        #: A connection already open to a seed (the one that found the cluster) is kept.
        self._nodes: dict[Address, Multiplexed] = dict(known or {})
        self._slots: list[Multiplexed] = []
        self._refresh_lock = asyncio.Lock()
        self._refresh_interval = refresh_interval
        self._refreshed_at = -refresh_interval
        self._stale = True

    def node(self, address: Address) -> Multiplexed:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = self._connect(address)
        return node

    async def refresh(self) -> None:
        """Read the slot map again (at most once per interval, however many callers ask)."""
        async with self._refresh_lock:
            if not self._stale and self._slots:
                return
            if time.monotonic() - self._refreshed_at < self._refresh_interval and self._slots:
                return
            self._refreshed_at = time.monotonic()
            errors = []
            for address in dict.fromkeys([*self._nodes, *self.seeds]):
                try:
                    (reply,) = await self.node(address).pipeline([("CLUSTER", "SLOTS")])
                except StoreUnavailable as exc:
                    errors.append(str(exc))
                    continue
                if isinstance(reply, ResponseError) or not reply:
                    errors.append(f"{address[0]}:{address[1]}: {reply or 'no slots assigned'}")
                    continue
                self._slots = self._table(reply, address)
                self._stale = False
                return
            raise StoreUnavailable("no Redis Cluster node answered: " + "; ".join(errors))

    def _table(self, ranges: list[Any], asked: Address) -> list[Multiplexed]:
        table: list[Multiplexed | None] = [None] * SLOTS
        for start, end, primary, *_ in ranges:
            host = primary[0].decode() if primary[0] else asked[0]
            node = self.node((host, int(primary[1])))
            for slot in range(int(start), int(end) + 1):
                table[slot] = node
        fallback = next(n for n in table if n is not None)
        # Slots no primary serves (a cluster being set up) go anywhere: the answer is an error.
        return [n if n is not None else fallback for n in table]

    def _route(self, command: Command) -> Multiplexed:
        key = command_key(command)
        return self._slots[key_slot(key) if key is not None else 0]

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The commands' replies in order; commands for different primaries go out concurrently,
        so the call costs one round trip however many primaries it touches."""
        if self._stale or not self._slots:
            await self.refresh()
        replies = await self._send([(self._route(c), [c]) for c in commands])
        moved = False
        retries: list[tuple[int, Multiplexed, list[Command]]] = []
        for i, reply in enumerate(replies):
            redirect = _redirect(reply)
            if redirect is None:
                continue
            for_good, address = redirect
            if for_good:
                moved = True
                retries.append((i, self.node(address), [commands[i]]))
            else:
                retries.append((i, self.node(address), [("ASKING",), commands[i]]))
        if moved:
            self._stale = True
            await self.refresh()
        if retries:
            again = await self._send([(node, cmds) for _, node, cmds in retries])
            for (i, _, _), reply in zip(retries, again, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, batches: list[tuple[Multiplexed, list[Command]]]) -> list[Any]:
        """One pipeline per node, all at once; each batch's last reply is its answer."""
        by_node: dict[Multiplexed, list[int]] = {}
        for i, (node, _) in enumerate(batches):
            by_node.setdefault(node, []).append(i)

        async def run(node: Multiplexed, indexes: list[int]) -> list[Any]:
            sent = [c for i in indexes for c in batches[i][1]]
            return await node.pipeline(sent)

        results = await asyncio.gather(
            *(run(node, idx) for node, idx in by_node.items()), return_exceptions=True
        )
        replies: list[Any] = [None] * len(batches)
        for (_, indexes), result in zip(by_node.items(), results, strict=True):
            if isinstance(result, BaseException):
                self._stale = True  # a primary gone: its replica may be the new owner
                raise result
            position = 0
            for i in indexes:
                position += len(batches[i][1])
                replies[i] = result[position - 1]
        return replies

    async def ping(self) -> bool:
        """Whether every primary answers."""
        await self.refresh()
        replies = await asyncio.gather(*(node.pipeline([("PING",)]) for node in set(self._slots)))
        return all(reply == [b"PONG"] for reply in replies)

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self._nodes.values()))
