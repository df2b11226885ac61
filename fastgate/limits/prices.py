"""What a model's tokens and images cost: the operator's price table first, then the ``genai-prices``
catalogue, for cost budgets, the access log, the metrics and the cost header.

The operator's table is per million tokens, input and output apart, as providers publish them:
``{"gpt-4o": {"input": 2.5, "output": 10}}``. The catalogue (a maintained list of providers'
prices) is cache-aware: cached input tokens at the provider's cached rate, Anthropic's cache
writes at theirs. A model neither knows costs nothing (its tokens still count against token
limits and budgets).

The catalogue's own ``calc_price`` takes ~80 µs a call (Decimal arithmetic, a unit registry, a
price looked up by date); here each ``(provider, model)`` is looked up once and reduced to four
float rates, so a request's cost is a dict look-up and a few multiplications.

Images are priced per image from the operator's table: one price for all or by quality and size
as OpenAI prices DALL-E 3 (``{"image": {"hd/1024x1024": 0.08, "1024x1024": 0.04, "default":
0.04}}``: ``<quality>/<size>`` first, then ``<size>``, ``<quality>``, ``default``). Audio models
may be priced by what they take instead: ``per_second`` of transcribed or translated audio
(whisper-1: 0.0001, OpenAI's $0.006 a minute) and ``per_character`` of speech input (tts-1:
0.000015, $15 per million characters).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from fastgate.schema.openai import Usage

#: fastgate's provider slugs that the catalogue knows by another id (its ``providers/*.yml``).
_CATALOGUE_IDS = {
    "openai": "openai",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "vertex-anthropic": "anthropic",
    "google": "google",
    "vertex-ai": "google",
    "bedrock": "aws",
    "mistral-ai": "mistral",
    "cohere": "cohere",
    "groq": "groq",
    "together-ai": "together",
    "fireworks-ai": "fireworks",
    "deepseek": "deepseek",
    "x-ai": "x-ai",
    "perplexity-ai": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "novita-ai": "novita",
    "moonshot": "moonshotai",
    "zhipu": "zhipuai",
    "z-ai": "zai",
}
#: Distinct (provider, model) pairs remembered before the table starts over (clients name models).
MAX_REMEMBERED = 4096
_MTOK = 1_000_000


class Price(msgspec.Struct, forbid_unknown_fields=True):
    input: float = 0.0
    output: float = 0.0
    per_second: float = 0.0
    per_character: float = 0.0
    image: float | dict[str, float] = 0.0


class PriceTable:
    """The operator's ``[prices]``: model name → price per million tokens."""

    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self.prices = prices or {}

    @classmethod
    def from_data(cls, data: object) -> PriceTable:
        return cls(msgspec.convert(data, dict[str, Price]))

    def audio_cost(self, model: str | None, seconds: float, characters: int) -> float:
        """What ``seconds`` of audio taken and ``characters`` of speech input cost (0 unpriced)."""
        price = self.prices.get(model or "")
        if price is None:
            return 0.0
        return seconds * price.per_second + characters * price.per_character

    def image_cost(self, model: str | None, images: int, quality: str | None, size: str | None) -> float:
        """What ``images`` generated images cost (0 without a per-image price)."""
        price = self.prices.get(model or "")
        if price is None or not images:
            return 0.0
        each = price.image
        if isinstance(each, dict):
            keys = (f"{quality}/{size}", size, quality, "default")
            each = next((each[k] for k in keys if k is not None and k in each), 0.0)
        return images * each


class Rates(NamedTuple):
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


def _rate(value: Any) -> float:
    """A catalogue price as a float: tiered prices (a few long-context models) at their base tier."""
    if value is None:
        return 0.0
    if isinstance(value, Decimal | int | float):
        return float(value)
    return float(getattr(value, "base", 0) or 0)


def catalogue_rates(provider: str, model: str) -> Rates | None:
    """The catalogue's current prices of a model, or None when it does not know the pair."""
    provider_id = _CATALOGUE_IDS.get(provider)
    if provider_id is None or not model:
        return None
    from genai_prices import data_snapshot  # ~16 ms to load: at start-up (Pricing.warm)

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    price = info.get_prices(datetime.now(tz=UTC))
    return Rates(
        _rate(price.input_mtok),
        _rate(price.output_mtok),
        _rate(price.cache_read_mtok if price.cache_read_mtok is not None else price.input_mtok),
        _rate(price.cache_write_mtok if price.cache_write_mtok is not None else price.input_mtok),
    )


def token_counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """``(input, output, cached input, reasoning, cache writes)`` of an OpenAI-shaped usage.

    Input counts every prompt token, as OpenAI's ``prompt_tokens`` does (the Anthropic mapping adds
    the cache reads and writes into it, see ``mapping/anthropic.pxi``).
    """
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details else 0
    if not cached and usage.cache_read_input_tokens:
        cached = usage.cache_read_input_tokens
    completion = usage.completion_tokens_details
    reasoning = (completion.reasoning_tokens or 0) if completion else 0
    return (
        usage.prompt_tokens,
        usage.completion_tokens,
        cached,
        reasoning,
        usage.cache_creation_input_tokens or 0,
    )


class Pricing:
    """``cost(provider, model, usage)``: the operator's table beats the catalogue."""

    def __init__(self, table: PriceTable | None = None, catalogue: bool = True) -> None:
        self.table = table or PriceTable()
        self.catalogue = catalogue
        self._rates: dict[tuple[str, str], Rates | None] = {}

    def warm(self) -> None:
        """Load the catalogue now, at start-up rather than in the first priced request."""
        if self.catalogue:
            catalogue_rates("openai", "gpt-4o")

    def rates(self, provider: str, model: str) -> Rates | None:
        key = (provider, model)
        try:
            return self._rates[key]
        except KeyError:
            pass
        own = self.table.prices.get(model)
        if own is not None:
            # The operator's table has no cache prices: cached tokens at the input price.
            found: Rates | None = Rates(own.input, own.output, own.input, own.input)
        else:
            found = catalogue_rates(provider, model) if self.catalogue else None
        if len(self._rates) >= MAX_REMEMBERED:
            self._rates.clear()
        self._rates[key] = found
        return found

    def cost(self, provider: str, model: str, usage: Usage, asked: str = "") -> float | None:
        """US dollars for an answer's usage, or None when neither the table nor the catalogue
        prices the model the answer names (``model``) or, failing that, the one ``asked`` for (an
        operator's alias, where the answer names a dated version)."""
        rates = self.rates(provider, model)
        if rates is None and asked and asked != model:
            rates = self.rates(provider, asked)
        if rates is None:
            return None
        prompt, output, cached, _, written = token_counts(usage)
        cached = min(cached, prompt)
        fresh = max(prompt - cached - written, 0)
        return (
            fresh * rates.input
            + cached * rates.cache_read
            + written * rates.cache_write
            + output * rates.output
        ) / _MTOK
