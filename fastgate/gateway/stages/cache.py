"""The response cache: exact (by a key over everything that decides the answer) or semantic.

The look-up goes with the limits stage's store round trip when that stage runs (the key is put
on the attempt here, first); a 2xx answer is stored after it was relayed, a stream only when it
ended cleanly. ``x-portkey-cache-namespace`` partitions the key; ``x-portkey-cache-force-refresh``
skips the look-up and stores the fresh answer (``REFRESH``).

The entry is the upstream's answer as its mapping gave it, before an ingress format's stage
translates it (stages are layers): a Messages request through the chat pivot stores the chat
answer, keyed by the chat request the pivot made, and is translated again on a hit; one to a
native target stores Anthropic's answer as it was relayed, keyed with the API version and betas
that shaped it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastgate.cache.entries import ANTHROPIC_SSE, JSON, SSE, StreamRecorder, json_entry
from fastgate.cache.keys import cache_key, request_params
from fastgate.cache.semantic import prompt_and_partition
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.gateway.semantic import SemanticCache
from fastgate.limits.guard import Guard
from fastgate.providers.base import Endpoint, Target
from fastgate.routing.plan import Leaf
from fastgate.upstream.pool import UpstreamPool

#: Portkey documents no default ``max_age``; a week, as its hosted cache uses.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
#: Answers that depend on the request alone. Image answers with ``url``s from OpenAI expire after an
#: hour (its API reference): cache those for less, or ask for ``b64_json``.
CACHEABLE = frozenset(
    {
        Endpoint.CHAT,
        Endpoint.COMPLETIONS,
        Endpoint.EMBEDDINGS,
        Endpoint.MESSAGES,
        Endpoint.IMAGES,
        Endpoint.RERANK,
    }
)
SEMANTIC = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
NAMESPACE = "x-portkey-cache-namespace"
#: The request headers a native Messages target is sent as they came that change its answer
#: (https://docs.anthropic.com/en/api/versioning, .../beta-headers): part of the key.
_MESSAGES_HEADERS = ("anthropic-version", "anthropic-beta")


class _Entry:
    """One attempt's cache work: its key (and the body it was made from), status, and the
    semantic mode's prompt and vector."""

    __slots__ = ("body", "key", "max_age", "partition", "prompt", "semantic", "status", "vector")

    def __init__(self, body: bytes, key: str, max_age: float, status: str) -> None:
        self.body = body
        self.key = key
        self.max_age = max_age
        self.status = status
        self.semantic = False
        self.prompt = ""
        self.partition = ""
        self.vector: bytes | None = None


class CacheStage(Stage):
    def __init__(
        self, guard: Guard, semantic: SemanticCache | None, resolve: Callable[[Target], Target]
    ) -> None:
        self.guard = guard
        #: Configs asking for ``mode: "semantic"`` without server settings get the exact cache.
        self.semantic = semantic
        #: The semantic mode's embedding target with its virtual key resolved.
        self.resolve = resolve
        #: For the semantic mode's embedding calls (set when the server starts).
        self.pool: UpstreamPool | None = None

    def wants(self, leaf: Leaf) -> bool:
        return leaf.cache is not None

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        if at.leaf.cache is None or at.call.endpoint not in CACHEABLE:
            return False
        # The body as the upstream gets it: the gateway's decode of it, unless a stage made
        # another (an ingress format's pivot), which is decoded here.
        self._entry(ex, at, ex.params if at.call.body is ex.body else None)
        return True

    def _entry(self, ex: Exchange, at: Attempt, params: dict[str, Any] | None) -> _Entry:
        """The attempt's cache work, keyed on the call's body (``params``: it decoded)."""
        settings = at.leaf.cache
        assert settings is not None
        call = at.call
        refresh = ex.opts.cache_force_refresh
        tenant = ex.key.id if ex.key is not None else ""
        headers = ex.request.headers
        namespace = headers.get(NAMESPACE)
        if namespace:
            tenant = f"{tenant}\0{namespace}"
        if call.endpoint is Endpoint.MESSAGES:
            tenant = "\0".join([tenant, *(headers.get(name) or "" for name in _MESSAGES_HEADERS)])
        params = request_params(call, params)
        entry = _Entry(
            call.body,
            cache_key(call, tenant, params),
            settings.max_age or DEFAULT_MAX_AGE,
            "REFRESH" if refresh else "MISS",
        )
        if settings.mode == "semantic" and self.semantic is not None and call.endpoint in SEMANTIC:
            prompt, partition = prompt_and_partition(call, tenant, params)
            if prompt:
                entry.semantic = True
                entry.prompt, entry.partition = prompt, partition
                if not refresh:
                    entry.status = "SEMANTIC MISS"
        at.lookup = None if refresh else entry.key
        at.notes[self] = entry
        return entry

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        entry: _Entry = at.notes[self]
        if at.call.body is not entry.body:
            # A stage before this one (guardrails) changed what is sent: the key is made from
            # that, as Portkey's is, and looked up here (the limits stage looked up the old one).
            entry = self._entry(ex, at, None)
            at.looked_up = False
        found = None
        if at.lookup is not None:
            found = at.cached if at.looked_up else await self.guard.cached(at.lookup)
        if not found and entry.semantic:
            found = await self._similar(entry, lookup=at.lookup is not None)
        if not found:
            return None
        entry.status = "SEMANTIC HIT" if entry.semantic else "HIT"
        headers = {"x-portkey-cache-status": entry.status}
        if found[:1] == SSE:
            return Outcome(
                status=200,
                provider=at.provider,
                call=at.call,
                headers=headers,
                events=_replay(found[1:]),
                mapper=ReplayMapper(),
                content_type="text/event-stream",
                from_cache=True,
            )
        if found[:1] == JSON:
            return Outcome(
                status=200,
                provider=at.provider,
                call=at.call,
                headers=headers,
                body=found[1:],
                from_cache=True,
            )
        return None

    async def _similar(self, entry: _Entry, *, lookup: bool) -> bytes | None:
        semantic = self.semantic
        assert semantic is not None and self.pool is not None
        target = self.resolve(semantic.settings.target)
        entry.vector = await semantic.embed(self.pool, target, entry.prompt)
        if entry.vector is None or not lookup:
            return None
        return await semantic.find(self.guard, entry.partition, entry.vector)

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        entry: _Entry = at.notes[self]
        outcome.headers["x-portkey-cache-status"] = entry.status
        if outcome.body is not None and _storable(outcome):
            self.store(entry, json_entry(outcome.body))
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _Recorder | None:
        if not _storable(outcome):
            return None
        if outcome.mapper is not None:
            return _Recorder(self, at.notes[self], StreamRecorder())
        # Relayed as it came (a native Messages target): Anthropic's stream, or a JSON body.
        sse = outcome.content_type == "text/event-stream"
        return _Recorder(self, at.notes[self], StreamRecorder(ANTHROPIC_SSE if sse else None))

    def store(self, entry: _Entry, data: bytes) -> None:
        guard = self.guard
        guard.store_answer(entry.key, data, entry.max_age)
        if entry.vector is not None and self.semantic is not None:
            limit = self.semantic.settings.max_entries
            guard.index(entry.partition, entry.key, entry.vector, limit, entry.max_age)


def _storable(outcome: Outcome) -> bool:
    return 200 <= outcome.status < 300 and outcome.reached and not outcome.from_cache


class _Recorder:
    """Records a stream as the client receives it; stored when it ended cleanly."""

    __slots__ = ("entry", "recorder", "stage")

    def __init__(self, stage: CacheStage, entry: _Entry, recorder: StreamRecorder) -> None:
        self.stage = stage
        self.entry = entry
        self.recorder = recorder

    def feed(self, out: bytes) -> bytes:
        if out:
            self.recorder.add(out)
        return out

    async def end(self) -> bytes:
        data = self.recorder.entry()
        if data is not None:
            self.stage.store(self.entry, data)
        return b""


async def _replay(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ReplayMapper:
    """A cached stream is already the SSE the mapping gave (OpenAI's, or Anthropic's relayed):
    written as it is."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        self.done = True
        return chunk

    def finish(self) -> bytes:
        return b""
