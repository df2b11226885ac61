"""The semantic cache: a previous answer served when its prompt's embedding is close enough.

Configured once in the server config, used by configs with ``cache: {mode: "semantic"}``:

```toml
[semantic_cache]
threshold = 0.95        # cosine similarity for a hit
max_entries = 256       # prompts remembered per partition
[semantic_cache.embedding]
provider = "openai"
api_key = "sk-..."
override_params = { model = "text-embedding-3-small" }
```

Answers are partitioned by everything but the prompt (tenant, provider address, credential,
the other request parameters, ``stream``), so a hit only ever crosses prompts, never tenants,
models or parameters. The prompt is embedded through fastgate itself, with the ``embedding``
target (any provider, a virtual key, a custom host).
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Any

import msgspec

from fastgate.cache.keys import address, credential_digest
from fastgate.providers.base import Call, Target
from fastgate.routing.config import config_from_data
from fastgate.routing.plan import compile_plan
from fastgate.schema.openai import EmbeddingList
from fastgate.ssrf import HostPolicy

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_embeddings_decoder = msgspec.json.Decoder(EmbeddingList)
#: The request fields that carry the prompt, left out of the partition.
PROMPT_FIELDS = ("messages", "prompt")


class _Settings(msgspec.Struct, forbid_unknown_fields=True):
    embedding: dict[str, Any]
    threshold: float = 0.95
    max_entries: int = 256


class SemanticSettings:
    def __init__(self, target: Target, threshold: float, max_entries: int) -> None:
        self.target = target
        self.threshold = threshold
        self.max_entries = max_entries

    @classmethod
    def from_data(cls, data: Any, policy: HostPolicy) -> SemanticSettings:
        spec = msgspec.convert(data, _Settings)
        if not 0 < spec.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if spec.max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        leaves = compile_plan(config_from_data(spec.embedding, policy)).leaves()
        if len(leaves) != 1:
            raise ValueError("embedding must be a single target")
        return cls(leaves[0].target, spec.threshold, spec.max_entries)


def prompt_and_partition(call: Call, tenant: str, params: Any) -> tuple[str, str]:
    """The prompt's text, and the partition key of everything else about the request.

    ``params``: the decoded request (``fastgate.cache.keys.request_params``)."""
    if not isinstance(params, dict):
        return "", ""
    texts: list[str] = []
    for message in params.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if content:
            texts.append(f"{message.get('role', 'user')}: {content}")
    prompt = params.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list):
        texts.extend(str(p) for p in prompt)
    rest = {k: v for k, v in params.items() if k not in PROMPT_FIELDS}
    digest = hashlib.sha256(address(call, tenant))
    digest.update(credential_digest(call.target.api_key))
    digest.update(_encode_sorted(rest))
    return "\n".join(texts), digest.hexdigest()


def embedding_body(text: str) -> bytes:
    return msgspec.json.encode({"input": text})


def embedding_vector(body: bytes) -> bytes | None:
    """The first embedding of an OpenAI embeddings answer, packed as float32 (None if absent)."""
    try:
        answer = _embeddings_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not answer.data or not isinstance(answer.data[0].embedding, list):
        return None
    return array("f", answer.data[0].embedding).tobytes()
