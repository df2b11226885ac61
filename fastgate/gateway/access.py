"""Keys, limits and the response cache on the request path.

The handlers call in at four points: :meth:`Access.authorize` when a request arrives,
:meth:`Access.target` for each routed target (virtual key resolved, policy checked),
:meth:`Access.admit` before the upstream call (limits and cache lookup, one store round trip)
and :meth:`Access.settle` with the answer (usage charged, answer cached; a stream gets a
watcher that does both as it ends). When no key, limit or cache applies, each is a few
attribute tests: no hashing, no body decode, no store traffic; and with no gateway key, virtual
key or cache at all the handler does not call the last three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from fastgate.cache.entries import JSON, SSE, StreamRecorder, json_entry
from fastgate.cache.keys import cache_key, request_params
from fastgate.cache.semantic import prompt_and_partition
from fastgate.errors import GatewayError
from fastgate.gateway.relay import Outcome
from fastgate.gateway.semantic import SemanticCache
from fastgate.headers import bearer_token
from fastgate.keys.models import GatewayKey, VirtualKey
from fastgate.keys.registry import KeyRegistry
from fastgate.limits.guard import Guard, LimitReached
from fastgate.limits.usage import UsageTap, body_usage, with_stream_usage
from fastgate.providers.base import Call, Endpoint, Provider, Target
from fastgate.routing.config import CacheSettings
from fastgate.schema.openai import StreamOptions
from fastgate.store.base import LimitRule
from fastgate.upstream.pool import UpstreamPool

#: Portkey documents no default ``max_age``; a week, as its hosted cache uses.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
CACHEABLE = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
SEMANTIC = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
VIRTUAL_KEY_SCOPE = "virtual_key:"
_INCLUDE_USAGE = StreamOptions(include_usage=True)


def _forbidden(message: str, param: str) -> GatewayError:
    return GatewayError(403, message, type="permission_error", param=param, code="not_allowed")


class Grant:
    """What one request may do: its gateway key (if any) and the limits it has been counted for."""

    __slots__ = ("bearer", "counted", "key", "key_rule")

    def __init__(self, key: GatewayKey | None, bearer: str | None) -> None:
        self.key = key
        #: The gateway key came in ``Authorization``: it must not reach the upstream.
        self.bearer = bearer
        self.key_rule: LimitRule | None = key.limits.rule(f"key:{key.id}") if key else None
        #: The key's request was counted already (a fallback's second target is not a new request).
        self.counted = False


class Admission(msgspec.Struct, kw_only=True):
    """The limits and cache that apply to one attempt at one target."""

    #: Checked and counted before the call.
    rules: list[LimitRule] = []
    #: Charged with the answer's usage: the key's rule too when a fallback's earlier target
    #: already counted the request.
    charged: list[LimitRule] = []
    cache_key: str | None = None
    max_age: float = DEFAULT_MAX_AGE
    #: The client did not ask for stream usage; the gateway did, and strips it again.
    strip_usage: bool = False
    status: str = "DISABLED"
    #: Semantic mode: the prompt, its partition, and its embedding once computed.
    semantic: bool = False
    prompt: str = ""
    partition: str = ""
    vector: bytes | None = None


NOTHING = Admission()


class Access:
    def __init__(
        self, registry: KeyRegistry | None, guard: Guard | None, semantic: SemanticCache | None = None
    ) -> None:
        self.registry = registry
        self.guard = guard
        #: Configs asking for ``mode: "semantic"`` without server settings get the exact cache.
        self.semantic = semantic

    # ---- arrival ----------------------------------------------------------------------------

    def authorize(self, headers: Mapping[str, str]) -> Grant | None:
        """The request's gateway key: required (401) as soon as the server has any.

        A key limited to some configs may only name one of them (a saved config's name in
        ``x-portkey-config``): no inline config, no header-built route.
        """
        registry = self.registry
        if registry is None or not registry.required:
            return None
        token = headers.get("x-portkey-api-key")
        bearer = None
        if not token:
            token = bearer = bearer_token(headers.get("authorization"))
        key = registry.authenticate(token, from_bearer=bearer is not None)
        config = headers.get("x-portkey-config")
        if key.allowed_configs and (config or "").strip() not in key.allowed_configs:
            raise _forbidden("This API key may not use this config", "config")
        return Grant(key, bearer)

    # ---- each target ------------------------------------------------------------------------

    def target(
        self, target: Target, grant: Grant | None, model: str | None
    ) -> tuple[Target, LimitRule | None]:
        """The target to call (virtual key resolved, gateway bearer removed, key policy checked)
        and the virtual key's limits."""
        vk_rule = None
        slug = target.virtual_key
        if slug:
            if self.registry is None:
                raise GatewayError(
                    401, "Virtual keys are not configured on this server", type="authentication_error"
                )
            vk = self.registry.resolve(slug)
            target = _with_virtual_key(target, vk)
            vk_rule = vk.limits.rule(VIRTUAL_KEY_SCOPE + vk.slug)
        if grant is None:
            return target, vk_rule
        if grant.bearer is not None and target.api_key == grant.bearer:
            target = msgspec.structs.replace(target, api_key=None)
        key = grant.key
        assert key is not None
        if key.allowed_providers and target.provider not in key.allowed_providers:
            raise _forbidden(f"This API key may not use provider {target.provider!r}", "provider")
        if key.allowed_models:
            params = target.override_params or {}
            chosen = params.get("model", model)
            if chosen not in key.allowed_models:
                raise _forbidden(f"This API key may not use model {chosen!r}", "model")
        return target, vk_rule

    def client_headers(self, headers: Mapping[str, str], grant: Grant | None) -> Mapping[str, str]:
        """The headers a provider may copy: a gateway key sent as the bearer is not one of them
        (the passthrough route relays the client's headers)."""
        if grant is None or grant.bearer is None:
            return headers
        return {k: v for k, v in headers.items() if k.lower() != "authorization"}

    # ---- before the upstream call -----------------------------------------------------------

    def plan(
        self,
        call: Call,
        grant: Grant | None,
        vk_rule: LimitRule | None,
        cache: CacheSettings | None,
        *,
        force_refresh: bool,
        stream: bool,
        params: dict[str, Any] | None = None,
    ) -> Admission:
        charged: list[LimitRule] = []
        key_rule = grant.key_rule if grant is not None else None
        if key_rule is not None:
            charged.append(key_rule)
        if vk_rule is not None:
            charged.append(vk_rule)
        use_cache = cache is not None and call.endpoint in CACHEABLE and self.guard is not None
        if not charged and not use_cache:
            return NOTHING
        counted = grant is not None and grant.counted
        rules = [r for r in charged if not (counted and r is key_rule)]
        admission = Admission(rules=rules, charged=charged)
        if stream and any(r.counts_tokens for r in charged) and not _asks_usage(call):
            # Ask for usage: OpenAI-compatible upstreams through the body, mapped providers
            # (which report usage in their own events) through the view their mapper reads.
            admission.strip_usage = True
            target = call.target
            call.target = msgspec.structs.replace(
                target, override_params=with_stream_usage(target.override_params)
            )
            call.view = msgspec.structs.replace(call.view, stream_options=_INCLUDE_USAGE)
        if use_cache:
            assert cache is not None
            admission.max_age = cache.max_age or DEFAULT_MAX_AGE
            admission.status = "REFRESH" if force_refresh else "MISS"
            tenant = grant.key.id if grant is not None and grant.key is not None else ""
            params = request_params(call, params)
            admission.cache_key = cache_key(call, tenant, params)
            if cache.mode == "semantic" and self.semantic is not None and call.endpoint in SEMANTIC:
                prompt, partition = prompt_and_partition(call, tenant, params)
                if prompt:
                    admission.semantic = True
                    admission.prompt, admission.partition = prompt, partition
                    if not force_refresh:
                        admission.status = "SEMANTIC MISS"
        return admission

    async def admit(
        self,
        provider: Provider,
        call: Call,
        grant: Grant | None,
        admission: Admission,
        pool: UpstreamPool | None,
    ) -> Outcome | None:
        """Count the request against its limits; a cached answer when there is one.

        Over a gateway key's limit: a 429 for the request. Over a virtual key's: a 429 outcome
        marked unreached (see below). Otherwise a returned outcome is the answer.
        """
        if admission is NOTHING:
            return None
        guard = self.guard
        assert guard is not None
        lookup = admission.cache_key if admission.status != "REFRESH" else None
        entry = None
        if admission.rules or lookup is not None:
            try:
                verdict = await guard.admit(admission.rules, lookup)
            except LimitReached as exc:
                if not exc.scope.startswith(VIRTUAL_KEY_SCOPE):
                    raise
                # This target's virtual key is spent, not the client: an unreached target, so a
                # fallback goes on to the next one, and without one the client gets the 429.
                return Outcome(
                    status=429,
                    provider=provider,
                    call=call,
                    headers=exc.headers or {},
                    body=exc.body(),
                    reached=False,
                )
            if grant is not None and grant.key_rule is not None:
                grant.counted = True
            entry = verdict.cached
        if not entry and admission.semantic:
            entry = await self._semantic(pool, guard, admission, lookup is not None)
        if not entry:
            return None
        admission.status = "SEMANTIC HIT" if admission.semantic else "HIT"
        headers = {"x-portkey-cache-status": admission.status}
        if entry[:1] == SSE:
            return Outcome(
                status=200,
                provider=provider,
                call=call,
                headers=headers,
                events=_replay(entry[1:]),
                mapper=ReplayMapper(),
                content_type="text/event-stream",
            )
        if entry[:1] == JSON:
            return Outcome(status=200, provider=provider, call=call, headers=headers, body=entry[1:])
        return None

    async def _semantic(
        self, pool: UpstreamPool | None, guard: Guard, admission: Admission, lookup: bool
    ) -> bytes | None:
        semantic = self.semantic
        assert semantic is not None and pool is not None
        target, _ = self.target(semantic.settings.target, None, None)
        admission.vector = await semantic.embed(pool, target, admission.prompt)
        if admission.vector is None or not lookup:
            return None
        return await semantic.find(guard, admission.partition, admission.vector)

    def store(self, admission: Admission, entry: bytes) -> None:
        guard = self.guard
        key = admission.cache_key
        assert guard is not None and key is not None
        guard.store_answer(key, entry, admission.max_age)
        if admission.vector is not None and self.semantic is not None:
            limit = self.semantic.settings.max_entries
            guard.index(admission.partition, key, admission.vector, limit, admission.max_age)

    # ---- the answer ---------------------------------------------------------------------------

    def settle(self, outcome: Outcome, admission: Admission) -> None:
        """The upstream's answer: a JSON one is charged and cached now, a stream as it ends."""
        target = outcome.call.target
        if target.virtual_key and target.api_key and outcome.body is not None and outcome.status >= 300:
            # Some upstreams quote the key they refused; a virtual key's secret never leaves.
            outcome.body = outcome.body.replace(target.api_key.encode(), b"[virtual key secret]")
        if admission is NOTHING:
            return
        outcome.headers["x-portkey-cache-status"] = admission.status
        if not 200 <= outcome.status < 300 or outcome.call.endpoint is Endpoint.PROXY:
            return
        guard = self.guard
        assert guard is not None
        if outcome.mapper is not None:
            outcome.watcher = StreamObserver(self, guard, admission)
            return
        if outcome.body is None:
            return
        if any(r.counts_tokens for r in admission.charged):
            view = body_usage(outcome.body)
            if view.usage is not None:
                guard.charge(admission.charged, view.model, view.usage)
        if admission.cache_key is not None:
            self.store(admission, json_entry(outcome.body))


def _asks_usage(call: Call) -> bool:
    options = call.view.stream_options
    return bool(options and options.include_usage)


def _with_virtual_key(target: Target, vk: VirtualKey) -> Target:
    """The virtual key's provider, secret, host and options; the request may add options the
    key does not set, never replace one, and may not send the secret to a host of its choosing."""
    if target.custom_host and target.custom_host != vk.custom_host:
        raise GatewayError(
            400,
            "A virtual key's host is set on the server: custom_host cannot be used with it",
            param="custom_host",
            code="custom_host_not_allowed",
        )
    return msgspec.structs.replace(
        target,
        provider=vk.provider,
        api_key=vk.secret or None,
        custom_host=vk.custom_host,
        options={**target.options, **vk.options},
    )


async def _replay(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ReplayMapper:
    """A cached stream is already OpenAI SSE ending in ``[DONE]``: written as it is."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        self.done = True
        return chunk

    def finish(self) -> bytes:
        return b""


class StreamObserver:
    """Sees a stream's output on its way to the client: usage for the limits, bytes for the cache."""

    __slots__ = ("access", "admission", "guard", "recorder", "tap")

    def __init__(self, access: Access, guard: Guard, admission: Admission) -> None:
        self.access = access
        self.guard = guard
        self.admission = admission
        counts = any(r.counts_tokens for r in admission.charged)
        self.tap = UsageTap(admission.strip_usage) if counts else None
        self.recorder = StreamRecorder() if admission.cache_key is not None else None

    def feed(self, out: bytes) -> bytes:
        if self.tap is not None:
            out = self.tap.feed(out)
        if self.recorder is not None and out:
            self.recorder.add(out)
        return out

    def end(self) -> bytes:
        """The stream ended: charge its usage, cache it if it finished cleanly."""
        tail = b""
        if self.tap is not None:
            tail = self.tap.flush()
            if self.tap.usage is not None:
                self.guard.charge(self.admission.charged, self.tap.model, self.tap.usage)
        if self.recorder is not None:
            if tail:
                self.recorder.add(tail)
            entry = self.recorder.entry()
            if entry is not None and self.admission.cache_key is not None:
                self.access.store(self.admission, entry)
        return tail
