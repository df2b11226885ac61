"""OpenAI-format moderation answers of the mock (Moderations API reference, the openai SDK's
``Moderation``): one result per input string, one for a list of multi-modal parts, each category
scored from a keyword list, so a test makes a category flag by what it sends.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import msgspec

from fastgate.mock.directives import Directives
from fastgate.mock.engine import MockPlan

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: Categories omni-moderation also scores on images (``category_applied_input_types``).
_IMAGE_CATEGORIES = frozenset(
    {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence", "violence/graphic"}
)
_KEYWORDS = {
    "harassment": ("idiot", "loser", "stupid"),
    "harassment/threatening": ("i will find you",),
    "hate": ("hate",),
    "hate/threatening": ("wipe them out",),
    "illicit": ("steal", "shoplift"),
    "illicit/violent": ("build a bomb",),
    "self-harm": ("hurt myself", "suicide"),
    "self-harm/intent": ("want to die",),
    "self-harm/instructions": ("how to hurt myself",),
    "sexual": ("explicit",),
    "sexual/minors": (),
    "violence": ("kill", "murder", "attack"),
    "violence/graphic": ("gore", "blood everywhere"),
}


def _low_score(text: str, category: str) -> float:
    """A small score that is the same for the same text and category."""
    digest = hashlib.sha256(f"{category}\0{text}".encode()).digest()
    return round(int.from_bytes(digest[:2], "big") / 65535 * 0.01, 6)


def _moderation(texts: list[str], image: bool) -> dict[str, Any]:
    text = " ".join(texts).lower()
    categories, scores, applied = {}, {}, {}
    for category in CATEGORIES:
        hit = any(word in text for word in _KEYWORDS[category])
        categories[category] = hit
        scores[category] = 0.97 if hit else _low_score(text, category)
        applied[category] = ["text", "image"] if image and category in _IMAGE_CATEGORIES else ["text"]
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def moderation_answer(request: dict[str, Any], d: Directives) -> MockPlan:
    given = request["input"]
    if isinstance(given, str):
        results = [_moderation([given], False)]
    elif given and all(isinstance(item, dict) for item in given):
        texts = [str(item.get("text", "")) for item in given if item.get("type") == "text"]
        results = [_moderation(texts, any(item.get("type") == "image_url" for item in given))]
    else:
        results = [_moderation([str(item)], False) for item in given]
    body = {
        "id": f"modr-mock{next(_ids)}",
        "model": request.get("model") or "omni-moderation-latest",
        "results": results,
    }
    return MockPlan(status=200, body=_encode(body), directives=d)
