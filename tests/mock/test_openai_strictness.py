"""The mock answers bad input as OpenAI does, and its tool calls validate against the tool's schema.

People test their integration against ``fastgate serve``'s mock before production: a body
OpenAI refuses must be refused here too (400, OpenAI's error body with ``param`` and ``code``),
over HTTP (``fastgate mock``) and in-process (``x-portkey-provider: mock``) alike. An agent
framework runs its tool loop on the mock: the scripted call's arguments must pass the tool's
own validation (LangChain tools here, converted as LangChain converts them), and a tool's
result gets an answer.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import aiohttp
import jsonschema
import msgspec
import openai
import pytest
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, Field

from fastgate.mock.tool_arguments import arguments_for
from tests.conftest import Gateway, Upstream

USER = [{"role": "user", "content": "hi"}]
#: (request body, param, code, message): OpenAI's answers to each.
BAD: dict[str, tuple[dict[str, Any], str | None, str | None, str]] = {
    "messages not an array": (
        {"model": "m", "messages": "nope"},
        "messages",
        "invalid_type",
        "Invalid type for 'messages': expected an array of objects, but got a string instead.",
    ),
    "no model": ({"messages": USER}, None, None, "you must provide a model parameter"),
    "no messages": (
        {"model": "m"},
        "messages",
        "missing_required_parameter",
        "Missing required parameter: 'messages'.",
    ),
    "empty messages": (
        {"model": "m", "messages": []},
        "messages",
        "empty_array",
        "Invalid 'messages': empty array. "
        "Expected an array with minimum length 1, but got an empty array instead.",
    ),
    "unknown role": (
        {"model": "m", "messages": [{"role": "bot", "content": "hi"}]},
        "messages[0].role",
        "invalid_value",
        "Invalid value: 'bot'. Supported values are: "
        "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
    ),
    "no role": (
        {"model": "m", "messages": [{"content": "hi"}]},
        "messages[0].role",
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].role'.",
    ),
    "message not an object": (
        {"model": "m", "messages": ["hi"]},
        "messages[0]",
        "invalid_type",
        "Invalid type for 'messages[0]': expected an object, but got a string instead.",
    ),
    "numeric content": (
        {"model": "m", "messages": [{"role": "user", "content": 7}]},
        "messages[0].content",
        "invalid_type",
        "Invalid type for 'messages[0].content': "
        "expected one of a string or array of objects, but got an integer instead.",
    ),
    "string temperature": (
        {"model": "m", "messages": USER, "temperature": "hot"},
        "temperature",
        "invalid_type",
        "Invalid type for 'temperature': expected a decimal, but got a string instead.",
    ),
    "temperature too high": (
        {"model": "m", "messages": USER, "temperature": 3},
        "temperature",
        "decimal_above_max_value",
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
    ),
    "string n": (
        {"model": "m", "messages": USER, "n": "2"},
        "n",
        "invalid_type",
        "Invalid type for 'n': expected an integer, but got a string instead.",
    ),
    "n zero": (
        {"model": "m", "messages": USER, "n": 0},
        "n",
        "integer_below_min_value",
        "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
    ),
    "string tools": (
        {"model": "m", "messages": USER, "tools": "none"},
        "tools",
        "invalid_type",
        "Invalid type for 'tools': expected an array of objects, but got a string instead.",
    ),
    "tool without function": (
        {"model": "m", "messages": USER, "tools": [{"type": "function"}]},
        "tools[0].function",
        "missing_required_parameter",
        "Missing required parameter: 'tools[0].function'.",
    ),
    "unknown tool_choice": (
        {
            "model": "m",
            "messages": USER,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "bogus",
        },
        "tool_choice",
        "invalid_value",
        "Invalid value: 'bogus'. Supported values are: 'none', 'auto', and 'required'.",
    ),
    "tool result without its call id": (
        {"model": "m", "messages": [*USER, {"role": "tool", "content": "42"}]},
        "messages[1].tool_call_id",
        "missing_required_parameter",
        "Missing required parameter: 'messages[1].tool_call_id'.",
    ),
    "unknown response_format": (
        {"model": "m", "messages": USER, "response_format": {"type": "bogus"}},
        "response_format.type",
        "invalid_value",
        "Invalid value: 'bogus'. Supported values are: 'json_object', 'json_schema', and 'text'.",
    ),
    "stream_options without stream": (
        {"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
        "stream_options",
        None,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
    ),
}


@pytest.mark.parametrize("case", BAD)
async def test_the_mock_over_http_refuses_as_openai(upstream: Upstream, case: str) -> None:
    body, param, code, message = BAD[case]
    async with aiohttp.ClientSession() as http:  # to the mock's own server, as `fastgate mock` serves it
        resp = await http.post(upstream.url + "/chat/completions", data=msgspec.json.encode(body))
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error == {"message": message, "type": "invalid_request_error", "param": param, "code": code}


@pytest.mark.parametrize("case", BAD)
async def test_the_in_process_mock_refuses_as_openai_through_the_sdk(gateway: Gateway, case: str) -> None:
    body, param, code, message = BAD[case]
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1",
        api_key="k",
        max_retries=0,
        default_headers={"x-portkey-provider": "mock"},
    ) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            if "model" in body and "messages" in body:
                await client.chat.completions.create(**body)
            else:  # the SDK itself insists on both: the raw post of its own client
                await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
    error = caught.value
    assert error.status_code == 400
    assert (error.param, error.code) == (param, code)
    assert error.body["message"] == f"mock error: {message}"  # type: ignore[index]
    assert error.body["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        ("/v1/completions", {"model": "m"}, "prompt", "Missing required parameter: 'prompt'."),
        ("/v1/embeddings", {"model": "m"}, "input", "Missing required parameter: 'input'."),
        ("/v1/embeddings", {"input": "x"}, None, "you must provide a model parameter"),
        (
            "/v1/embeddings",
            {"model": "m", "input": "x", "encoding_format": "hex"},
            "encoding_format",
            "Invalid value: 'hex'. Supported values are: 'float' and 'base64'.",
        ),
    ],
)
async def test_completions_and_embeddings_refuse_too(
    gateway: Gateway, path: str, body: dict[str, Any], param: str | None, message: str
) -> None:
    resp = await gateway.post(path, body, {"x-portkey-provider": "mock"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["param"], error["message"]) == (param, f"mock error: {message}")


async def test_parameters_the_mock_does_not_know_still_pass(gateway: Gateway, upstream: Upstream) -> None:
    # A gateway passes new parameters on; the mock plays every OpenAI-compatible provider.
    body = {"model": "m", "messages": USER, "brand_new_parameter": {"x": 1}, "safe_prompt": True}
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-provider": "mock"})
    assert resp.status == 200


# ---- tool calls ---------------------------------------------------------------------------------


@tool
def get_weather(city: str, units: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city."""
    return f"21 degrees {units} in {city}"


class Seat(StrEnum):
    aisle = "aisle"
    window = "window"


class Traveller(BaseModel):
    name: str = Field(min_length=2)
    age: int = Field(ge=18, le=120)
    seat: Seat


class Trip(BaseModel):
    destination: str
    travellers: list[Traveller] = Field(min_length=2)
    nights: int = Field(gt=0, le=30)
    budget: float = Field(ge=100.5)
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None


@tool(args_schema=Trip)
def book_trip(**trip: Any) -> str:
    """Book a trip for several travellers."""
    return f"booked {trip['nights']} nights in {trip['destination']}"


@tool
def count_words(text: str, minimum: int = Field(ge=3, default=3), strict: bool = False) -> int:
    """Count the words of a text."""
    return len(text.split())


TOOLS: list[BaseTool] = [get_weather, book_trip, count_words]


def targets(gateway: Gateway, upstream: Upstream) -> dict[str, dict[str, str]]:
    """The same tool loop through the in-process mock, the mock over HTTP, and two mapped providers."""
    root = str(upstream.server.make_url("")).rstrip("/")
    return {
        "in-process": {"x-portkey-provider": "mock"},
        "http": {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url},
        "anthropic": {"x-portkey-provider": "anthropic", "x-portkey-custom-host": upstream.url},
        "google": {"x-portkey-provider": "google", "x-portkey-custom-host": root},
    }


#: Every tool by every route, but one: Gemini's schema subset has no ``exclusiveMinimum``, so
#: Gemini (and the mock in its place) never sees ``book_trip``'s ``nights > 0``.
LOOPS = [
    pytest.param(route, lc_tool, id=f"{route}-{lc_tool.name}")
    for route in ("in-process", "http", "anthropic", "google")
    for lc_tool in TOOLS
    if not (route == "google" and lc_tool is book_trip)
]


@pytest.mark.parametrize(("route", "lc_tool"), LOOPS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_langchain_tool_loop_runs_on_the_mock(
    gateway: Gateway, upstream: Upstream, route: str, lc_tool: BaseTool, stream: bool
) -> None:
    spec = convert_to_openai_tool(lc_tool)
    schema = spec["function"]["parameters"]
    messages: list[Any] = [{"role": "user", "content": "Plan it for Oslo"}]
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1",
        api_key="sk-k",
        max_retries=0,
        default_headers=targets(gateway, upstream)[route],
    ) as client:
        choice = {"type": "function", "function": {"name": lc_tool.name}}
        if stream:
            chunks = await client.chat.completions.create(
                model="gemini-x" if route == "google" else "m",
                messages=messages,
                tools=[spec],  # type: ignore[list-item]
                tool_choice=choice,  # type: ignore[arg-type]
                stream=True,
            )
            call_id, name, arguments = "", "", ""
            async for chunk in chunks:
                for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    call_id = delta.id or call_id
                    name = (delta.function and delta.function.name) or name
                    arguments += (delta.function and delta.function.arguments) or ""
        else:
            answer = await client.chat.completions.create(
                model="gemini-x" if route == "google" else "m",
                messages=messages,
                tools=[spec],  # type: ignore[list-item]
                tool_choice=choice,  # type: ignore[arg-type]
            )
            assert answer.choices[0].finish_reason == "tool_calls"
            [call] = answer.choices[0].message.tool_calls or []
            call_id, name, arguments = call.id, call.function.name, call.function.arguments  # type: ignore[union-attr]
        assert name == lc_tool.name
        args = json.loads(arguments)
        jsonschema.validate(args, schema)  # the schema as the model was given it
        result = lc_tool.invoke(args)  # and the tool's own (pydantic) validation
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": str(result)},
        ]
        final = await client.chat.completions.create(
            model="gemini-x" if route == "google" else "m",
            messages=messages,
            tools=[spec],  # type: ignore[list-item]
            extra_body={"mock": {"tool_call": True}} if route in ("in-process", "http") else None,
        )
    # A tool's result ends the loop: the mock answers in text, even when told to call tools.
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": []}, {}),
        ({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5}}}, {"a": 5}),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "number", "exclusiveMaximum": -1}},
                "required": ["a"],
            },
            {"a": -1.5},
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 7, "minimum": 1}}},
            {"a": 7},
        ),
        ({"type": "object", "properties": {"a": {"const": "fixed"}}}, {"a": "fixed"}),
        ({"type": "object", "properties": {"a": {"type": ["null", "boolean"]}}}, {"a": True}),
        ({"type": "OBJECT", "properties": {"a": {"type": "STRING", "enum": ["x", "y"]}}}, {"a": "x"}),
        (
            {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
            {"when": "2024-01-01T00:00:00Z"},
        ),
        ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}}, {"a": "Osl"}),
    ],
)
def test_arguments_follow_the_schema(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    args = arguments_for(schema, "Oslo")
    assert args == expected
    jsonschema.validate(
        args,
        {k: (v.lower() if k == "type" and isinstance(v, str) else v) for k, v in schema.items()}
        if schema["type"] != "OBJECT"
        else {"type": "object"},
    )


def test_refs_unique_items_and_all_of() -> None:
    class Leg(BaseModel):
        stops: list[Seat] = Field(min_length=2, json_schema_extra={"uniqueItems": True})
        ids: list[int] = Field(min_length=3, json_schema_extra={"uniqueItems": True})

    class Route(BaseModel):
        legs: list[Leg] = Field(min_length=1)
        main: Leg

    schema = Route.model_json_schema()  # with $defs and $ref, as pydantic writes it
    assert "$defs" in schema
    args = arguments_for(schema, "Oslo")
    jsonschema.validate(args, schema)
    Route.model_validate(args)
    merged = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    }
    assert arguments_for(merged, "x") == {"a": 0, "b": True}
