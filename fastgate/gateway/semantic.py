"""The semantic cache's two steps around an exact-match miss: embed the prompt through the
gateway's own upstream pool, then look for the closest indexed prompt of the same partition.

A failure on the way (embedding target down, store unreachable) is a miss, never an error: the
request goes on to its upstream as it would without a cache.
"""

from __future__ import annotations

import logging

from fastgate._transforms import best_match
from fastgate.cache.semantic import SemanticSettings, embedding_body, embedding_vector
from fastgate.gateway.relay import attempt
from fastgate.limits.guard import Guard
from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.registry import get_provider
from fastgate.schema.openai import RequestView
from fastgate.upstream.pool import UpstreamPool

log = logging.getLogger("fastgate.cache")
_VIEW = RequestView()


class SemanticCache:
    def __init__(self, settings: SemanticSettings) -> None:
        self.settings = settings

    async def embed(self, pool: UpstreamPool, target: Target, text: str) -> bytes | None:
        """``target``: the configured embedding target, its virtual key already resolved."""
        provider = get_provider(target.provider)
        call = Call(endpoint=Endpoint.EMBEDDINGS, target=target, body=embedding_body(text), view=_VIEW)
        outcome = await attempt(pool, provider, call, False)
        vector = embedding_vector(outcome.body) if outcome.status == 200 and outcome.body else None
        if vector is None:
            log.warning("semantic cache: the embedding target answered %d; treated as a miss", outcome.status)
        return vector

    async def find(self, guard: Guard, partition: str, vector: bytes) -> bytes | None:
        """The cached answer of the closest prompt at or above the threshold, if any."""
        candidates = await guard.similar(partition)
        if not candidates:
            return None
        index, similarity = best_match(vector, [v for _, v in candidates])
        if index < 0 or similarity < self.settings.threshold:
            return None
        return await guard.cached(candidates[index][0])
