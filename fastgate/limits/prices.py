"""The price table: what a model's tokens and images cost, for cost budgets.

Prices are per million tokens, input and output apart, as providers publish them:
``{"gpt-4o": {"input": 2.5, "output": 10}}``; an image model may add a price per image, one for
all or by quality and size as OpenAI prices DALL-E 3 (``{"image": {"hd/1024x1024": 0.08,
"1024x1024": 0.04, "default": 0.04}}``: ``<quality>/<size>`` first, then ``<size>``,
``<quality>``, ``default``). Audio models may be priced by what they take instead:
``per_second`` of transcribed or translated audio (whisper-1: 0.0001, OpenAI's $0.006 a minute)
and ``per_character`` of speech input (tts-1: 0.000015, $15 per million characters). A model
missing from the table costs 0 (its tokens still count against token limits and budgets).
"""

from __future__ import annotations

import msgspec


class Price(msgspec.Struct, forbid_unknown_fields=True):
    input: float = 0.0
    output: float = 0.0
    per_second: float = 0.0
    per_character: float = 0.0
    image: float | dict[str, float] = 0.0


class PriceTable:
    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self.prices = prices or {}

    @classmethod
    def from_data(cls, data: object) -> PriceTable:
        return cls(msgspec.convert(data, dict[str, Price]))

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model or "")
        if price is None:
            return 0.0
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000

    def audio_cost(self, model: str | None, seconds: float, characters: int) -> float:
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
