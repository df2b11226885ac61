"""Arguments for the mock's scripted tool calls that validate against the tool's JSON Schema.

Agent frameworks (LangChain, the OpenAI Agents SDK ...) validate a model's tool arguments
against the tool's schema before they run it; a mock that calls ``get_weather(city)`` with
``{"query": ...}`` stops their loops at the first step. The value built here is deterministic:
every required property (every property when the schema marks none required), the prompt's text
for strings, the first of an ``enum``, the ``default`` or ``const`` when given, the bounds of
numbers and arrays respected, ``$ref`` into ``$defs`` / ``definitions`` followed. A ``pattern``
is not solved for.
"""

from __future__ import annotations

from typing import Any

#: Nesting followed before a value is cut short (schemas may be recursive through ``$ref``).
_MAX_DEPTH = 12
#: A value for each string ``format`` JSON Schema 2020-12 §7.3 names that a text would not match.
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "mock@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
}


def arguments_for(schema: Any, text: str) -> dict[str, Any]:
    """The arguments of a call to a tool whose parameters are ``schema`` (an object schema)."""
    value = _Builder(schema if isinstance(schema, dict) else {}, text or "mock").build(schema, 0)
    return value if isinstance(value, dict) else {}


class _Builder:
    def __init__(self, root: dict[str, Any], text: str) -> None:
        self.root = root
        self.text = text

    def build(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None
        schema = self._resolved(schema, depth)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema:
            return schema["default"]
        for key in ("anyOf", "oneOf"):
            options = [o for o in schema.get(key) or () if isinstance(o, dict)]
            if options:
                chosen = next(
                    (o for o in options if _type_of(self._resolved(o, depth)) != "null"), options[0]
                )
                return self.build({**_without(schema, key), **chosen}, depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return int(_number(schema, integer=True))
        if kind == "number":
            return _number(schema, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema)

    def _resolved(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """``$ref`` (to a definition in the same document) and ``allOf`` folded in."""
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and depth <= _MAX_DEPTH:
            target: Any = self.root
            for step in ref[2:].split("/"):
                target = (
                    target.get(step.replace("~1", "/").replace("~0", "~"))
                    if isinstance(target, dict)
                    else None
                )
            if isinstance(target, dict):
                schema = {**target, **_without(schema, "$ref")}
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = _without(schema, "allOf")
            for item in parts:
                if isinstance(item, dict):
                    part = self._resolved(item, depth + 1)
                    merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                    merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                    merged = {**part, **merged}
            schema = merged
        return schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        names = schema["required"] if "required" in schema else list(properties)
        return {name: self.build(properties.get(name, {"type": "string"}), depth + 1) for name in names}

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        count = max(1, int(schema.get("minItems") or 0))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        if isinstance(items, list):  # draft-04 tuple form
            return [self.build(item, depth + 1) for item in items][: max(count, len(items))]
        items = self._resolved(items, depth) if isinstance(items, dict) else {}
        if schema.get("uniqueItems") and count > 1:
            return _distinct(self, items, count, depth)
        return [self.build(items, depth + 1) for _ in range(count)]

    def _string(self, schema: dict[str, Any]) -> str:
        value = _FORMATS.get(str(schema.get("format")), self.text)
        low = int(schema.get("minLength") or 0)
        if len(value) < low:
            value += "x" * (low - len(value))
        if "maxLength" in schema:
            value = value[: int(schema["maxLength"])]
        return value


def _distinct(builder: _Builder, items: dict[str, Any], count: int, depth: int) -> list[Any]:
    """``count`` different items (``uniqueItems``): enum members, numbers or suffixed strings."""
    if items.get("enum"):
        return list(items["enum"][:count])
    kind = _type_of(items)
    first = builder.build(items, depth + 1)
    if kind in ("integer", "number"):
        return [first + i for i in range(count)]
    if kind == "string":
        return [first] + [f"{first}{i}" for i in range(1, count)]
    return [first]


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI subset writes STRING, OBJECT ...
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _number(schema: dict[str, Any], *, integer: bool) -> float:
    """0, moved into the bounds (draft-04 boolean ``exclusiveMinimum`` too) and onto ``multipleOf``."""
    step = 1 if integer else 0.5
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open, high_open = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low_open is True:
        low_open, low = low, None
    if high_open is True:
        high_open, high = high, None
    value: float = 0
    if isinstance(low, int | float):
        value = max(value, low)
    if isinstance(low_open, int | float) and value <= low_open:
        value = low_open + step
    if isinstance(high, int | float):
        value = min(value, high)
    if isinstance(high_open, int | float) and value >= high_open:
        value = high_open - step
        if isinstance(low_open, int | float) and value <= low_open:
            value = (low_open + high_open) / 2
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0 and value % multiple:
        value = (value // multiple + 1) * multiple
    return value


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}
