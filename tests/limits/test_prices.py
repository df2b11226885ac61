"""The price table: tokens per million, images per image (by quality and size where given)."""

from __future__ import annotations

import msgspec
import pytest

from fastgate.limits.prices import PriceTable, Pricing
from fastgate.schema.openai import Usage

TABLE = PriceTable.from_data(
    {
        "gpt-4o": {"input": 2.5, "output": 10},
        "dall-e-3": {"image": {"hd/1792x1024": 0.12, "hd": 0.08, "1024x1024": 0.04, "default": 0.08}},
        "core": {"image": 0.03},
    }
)


@pytest.mark.parametrize(
    ("model", "images", "quality", "size", "cost"),
    [
        ("dall-e-3", 2, "hd", "1792x1024", 0.24),  # quality/size first
        ("dall-e-3", 1, "standard", "1024x1024", 0.04),  # then the size
        ("dall-e-3", 1, "hd", "1024x1024", 0.04),  # the size before the quality
        ("dall-e-3", 1, "hd", "1024x1792", 0.08),  # then the quality
        ("dall-e-3", 3, None, None, 0.24),  # then the default
        ("core", 4, None, "1792x1024", 0.12),  # one price for every image
        ("gpt-4o", 2, None, None, 0.0),  # no image price
        ("unknown", 2, None, None, 0.0),
        ("core", 0, None, None, 0.0),
    ],
)
def test_image_cost(model: str, images: int, quality: str | None, size: str | None, cost: float) -> None:
    assert TABLE.image_cost(model, images, quality, size) == pytest.approx(cost)


def test_token_prices_are_unchanged_and_unknown_fields_refused() -> None:
    pricing = Pricing(TABLE, catalogue=False)
    assert pricing.cost("openai", "gpt-4o", Usage(1_000_000, 100_000)) == pytest.approx(3.5)
    with pytest.raises(msgspec.ValidationError):
        PriceTable.from_data({"m": {"per_image": 1}})
