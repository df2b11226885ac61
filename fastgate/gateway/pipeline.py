"""The stages around the upstream call: the per-request concerns as an ordered list of objects.

A request arrives, its options and body are read, then its routing plan is walked target by
target; around each attempt the stages run as layers around the upstream call: their ``engage``
and ``before`` in order (keys → limits → guardrails → cache), their ``after`` and stream watchers
in the reverse order, innermost first, so the stage nearest the upstream sees its answer first
(the cache stores what the upstream said, before guardrails judge it or an ingress format
translates it). Just before the answer's head is written, the stages that asked see it and may add
headers (``respond``); once the answer is written every engaged stage that asked is told how it
ended (and a stage that hears every request, of every request: observability). A stage is an
object with the hooks it needs (:class:`Stage` lists them, each a no-op by default).

What a request pays for stages it does not need is the point of the design. A stage engages for
an attempt when it said so for the whole request (:meth:`Stage.arrive`, e.g. a gateway key with
limits) or for the target (:meth:`Stage.wants`, asked once per routing leaf and kept on it, e.g. a
leaf with a cache setting); only engaged stages see the attempt's hooks. A plain request, no key,
no cache, no hook, engages none: an empty tuple, and no stage is called past ``arrive``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from fastgate.gateway.relay import Outcome, StreamWatcher
from fastgate.providers.base import Call, Endpoint, Provider
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import RawContentChatRequest, RequestView
from fastgate.server.messages import Request

if TYPE_CHECKING:
    from fastgate.gateway.options import RequestOptions
    from fastgate.gateway.uploads import ReplayableBody
    from fastgate.keys.models import GatewayKey, VirtualKey


class Exchange(msgspec.Struct, kw_only=True):
    """One request between its arrival and its answer: what every stage reads, and what the
    stages note for each other (``key``) or for themselves (``notes``, keyed by the stage)."""

    request: Request
    endpoint: Endpoint
    #: The request headers a provider may copy upstream (forward headers, the passthrough):
    #: ``request.headers`` unless a stage took one out.
    headers: Mapping[str, str]
    body: bytes = b""
    #: An upload's body, streamed to the upstream as it arrives (``body`` is then empty).
    upload: ReplayableBody | None = None
    stream: bool = False
    #: The ingress format when it is not OpenAI's (``"messages"``): its stage maps to the pivot.
    ingress: str = ""
    #: A stage's ``arrive`` asks for the whole body decoded (``params``) whatever the plan says.
    decodes_body: bool = False
    #: Read once the stages have seen the request arrive.
    opts: RequestOptions = None  # type: ignore[assignment]
    #: The request as the gateway reads it (the whole of it for a mapped provider), once decoded.
    view: RequestView | RawContentChatRequest = None  # type: ignore[assignment]
    #: The whole body decoded, when the plan or a stage needed it (conditions, the cache).
    params: dict[str, Any] | None = None
    #: The caller's gateway key (the keys stage), for limits, the cache's tenant and logs.
    key: GatewayKey | None = None
    #: Stages engaged for every attempt of this request (their ``arrive`` said so).
    stages: tuple[Stage, ...] = ()
    #: The stages engaged for the request or one of its attempts that have a last word (``end``).
    ending: tuple[Stage, ...] = ()
    notes: dict[Stage, Any] | None = None
    #: Guardrail hooks' verdicts, ``(event, verdict)``: ``before_request`` or ``after_request``,
    #: and ``passed``, ``failed`` or ``denied`` (for the metrics).
    verdicts: list[tuple[str, str]] | None = None
    #: The answer given (None until then, or when the request failed with ``error``).
    outcome: Outcome | None = None
    error: BaseException | None = None

    def note(self, stage: Stage, value: Any) -> None:
        if self.notes is None:
            self.notes = {}
        self.notes[stage] = value

    def noted(self, stage: Stage, default: Any = None) -> Any:
        return default if self.notes is None else self.notes.get(stage, default)


class Attempt(msgspec.Struct):
    """One target tried for an exchange: the call to make, and what the stages found for it."""

    leaf: Leaf
    call: Call
    #: Each engaged stage's state for this attempt (made when a stage engages).
    notes: dict[Stage, Any]
    #: The stages engaged for this attempt, in order.
    stages: tuple[Stage, ...] = ()
    #: Known once the stages have engaged (a virtual key names its provider).
    provider: Provider = None  # type: ignore[assignment]
    #: The target's virtual key, resolved by the keys stage: whose limits apply.
    virtual_key: VirtualKey | None = None
    #: The response cache's key for this attempt, if it looks one up. The limits stage takes
    #: the look-up into its store round trip (``cached``, ``looked_up``): one round trip for both.
    lookup: str | None = None
    cached: bytes | None = None
    looked_up: bool = False


class Stage:
    """One per-request concern. Override only the hooks the concern needs."""

    #: The ingress format this stage serves (``Exchange.ingress``): it engages for every request
    #: in that format, found by the pipeline without an ``arrive`` call on every other request.
    ingress: ClassVar[str] = ""
    #: Its ``end`` hears of every request, refused ones and those it did not engage for.
    hears_all: ClassVar[bool] = False

    def arrive(self, ex: Exchange) -> bool:
        """The request arrived, nothing of it read yet but its head and body: check who sent it
        (raise a ``GatewayError`` to refuse it), note what later hooks need. True engages this
        stage for every attempt of the request."""
        return False

    def parts(self) -> tuple[Stage, ...]:
        """The stages, in order, that ``arrive`` engages: this one, or a stage's parts placed
        apart in the order (each with its own hooks)."""
        return (self,)

    def wants(self, leaf: Leaf) -> bool:
        """Whether this stage may have work on every attempt at this routing leaf (asked once
        per leaf: it must depend on the leaf alone)."""
        return False

    def tried(self, ex: Exchange, leaf: Leaf) -> None:
        """A target is about to be tried (each target once, retries aside), whatever the stages
        engaged: for a stage that only notes it (observability times each target's wait), with
        no ``Attempt`` made for it."""

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        """A target is about to be tried and the stage engaged for it: whether it has work on
        this attempt after all. It may change ``at.call`` (a resolved virtual key, a parameter
        the stage needs) and note its state in ``at.notes``."""
        return True

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        """Before the upstream call: an outcome returned is the attempt's answer instead (a
        cached answer, a refusal); the later stages' ``before`` are then not called."""
        return None

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        """Each answer of the attempt (a JSON answer whole, a stream up to its first event,
        retries included): inspect, account, or return another outcome in its place."""
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> StreamWatcher | None:
        """The answer is a stream about to be relayed: a watcher over its events, chained in
        stage order (each sees what the one before it let through)."""
        return None

    def respond(self, ex: Exchange, outcome: Outcome, headers: dict[str, str]) -> None:
        """The answer is about to be written: ``outcome`` is final and ``headers`` are its head's
        (Portkey's ``x-portkey-*`` included), the last point to add one. Called once per answered
        request for every stage that implements it, engaged or not, innermost first; a stage may
        add a watcher to a stream's ``outcome.watchers`` here (it then sees the stream last)."""

    def end(self, ex: Exchange) -> None:
        """The answer was written, or the request failed (``ex.error``): the last word of a
        stage engaged for the request or one of its attempts, or, for a stage that hears every
        request (``hears_all``), of every request, refused ones included (possibly before this
        stage's ``arrive``)."""


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook) is not getattr(Stage, hook)


class Pipeline:
    """The server's stages in order, and for each hook the ones that implement it."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.leaf_stages = tuple(s for s in self.stages if _overrides(s, "wants"))
        #: Told of each target tried (``Stage.tried``), engaged or not.
        self.trying = tuple(s for s in self.stages if _overrides(s, "tried"))
        #: Called by the route handler itself, each in turn (no layer of their own): ``respond``
        #: innermost first, as ``after``; ``end`` in order (``Pipeline.end``).
        self.responding = tuple(s for s in reversed(self.stages) if _overrides(s, "respond"))
        ending = [s for s in self.stages if _overrides(s, "end")]
        #: The stages whose ``end`` hears of every request (``Stage.hears_all``).
        self.hearing = tuple(s for s in ending if s.hears_all)
        #: The others: told only when engaged for the request or one of its attempts.
        self.ending = frozenset(s for s in ending if not s.hears_all)
        self.order = {stage: index for index, stage in enumerate(self.stages)}
        #: Each stage that may arrive, the parts it engages, and those of them that end.
        self.arriving = tuple(
            (s, s.parts(), tuple(p for p in s.parts() if p in self.ending))
            for s in self.stages
            if _overrides(s, "arrive")
        )
        #: The stages that engage for an ingress format's every request, and those of them that end.
        self.by_ingress = {
            s.ingress: (s.parts(), tuple(p for p in s.parts() if p in self.ending))
            for s in self.stages
            if s.ingress
        }

    def arrive(self, ex: Exchange) -> None:
        engaged: tuple[Stage, ...] = ()
        ending: tuple[Stage, ...] = ()
        if ex.ingress:
            engaged, ending = self.by_ingress.get(ex.ingress, ((), ()))
        for stage, parts, ends in self.arriving:
            if stage.arrive(ex):
                engaged += parts
                if ends:
                    ending += ends
        if engaged:
            if len(engaged) > 1:
                engaged = tuple(sorted(engaged, key=self.order.__getitem__))
            ex.stages = engaged
            if ending:
                ex.ending = ending

    def for_leaf(self, leaf: Leaf) -> tuple[Stage, ...]:
        """The stages that may act on every attempt at ``leaf``, found once and kept on it."""
        stages = leaf.stages
        if stages is None:
            stages = leaf.stages = tuple(s for s in self.leaf_stages if s.wants(leaf))
        return stages

    def engage(self, ex: Exchange, leaf: Leaf, call: Call, leaf_stages: tuple[Stage, ...]) -> Attempt | None:
        """The attempt at ``leaf``, if the request's stages or the leaf's (not both empty) engage
        for it; None when none has work on it after all."""
        candidates = ex.stages
        if leaf_stages:
            candidates = (
                tuple(sorted({*candidates, *leaf_stages}, key=self.order.__getitem__))
                if candidates
                else leaf_stages
            )
        at = Attempt(leaf, call, notes={})
        engaged: tuple[Stage, ...] = ()
        for stage in candidates:
            if stage.engage(ex, at):
                engaged += (stage,)
                if stage in self.ending and stage not in ex.ending:
                    ex.ending += (stage,)
        if not engaged:
            return None
        at.stages = engaged
        return at

    @staticmethod
    async def before(ex: Exchange, at: Attempt) -> Outcome | None:
        """The engaged stages' ``before``, in order; an early outcome if one answered in the
        upstream's place."""
        for stage in at.stages:
            early = await stage.before(ex, at)
            if early is not None:
                return early
        return None

    @staticmethod
    async def after(ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        """Each engaged stage's ``after``, innermost first (the reverse of their order), on each
        answer of the attempt (a retry's decision sees what they made of it)."""
        for stage in reversed(at.stages):
            outcome = await stage.after(ex, at, outcome)
        return outcome

    @staticmethod
    def watch(ex: Exchange, at: Attempt, outcome: Outcome) -> None:
        """The answer is a stream: the engaged stages' watchers over it, innermost first."""
        for stage in reversed(at.stages):
            watcher = stage.watch(ex, at, outcome)
            if watcher is not None:
                outcome.watchers += (watcher,)

    def end(self, ex: Exchange) -> None:
        """The last word of the stages that hear every request, then of each stage engaged for
        the request or one of its attempts."""
        for stage in self.hearing:
            stage.end(ex)
        for stage in ex.ending:
            stage.end(ex)
