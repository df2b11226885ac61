"""Provider ``google`` through the gateway to the Gemini-format mock over HTTP, read by the openai SDK."""

from __future__ import annotations

import base64

import msgspec
import openai
import pytest

from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import GOOGLE_KEY, MODEL, WEATHER_TOOL, client, google_headers, sent


async def test_chat_maps_request_and_answer(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello gemini"},
            ],
            temperature=0.2,
            top_p=0.9,
            max_tokens=50,
            stop=["END"],
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.25,
            logit_bias={"42": 1},
            user="u-1",
            parallel_tool_calls=False,
        )
    assert answer.object == "chat.completion"
    assert answer.model == MODEL
    [choice] = answer.choices
    assert choice.message.content == "Mock reply to: hello gemini"
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert answer.usage is not None and answer.usage.prompt_tokens == 4
    assert answer.usage.completion_tokens == 5 and answer.usage.total_tokens == 9
    [received] = upstream.requests
    assert received["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert received["query"] == ""  # the key is never in the URL
    assert received["headers"]["x-goog-api-key"] == GOOGLE_KEY
    assert "Authorization" not in received["headers"]
    body = sent(upstream)
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
            "seed": 7,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
        },
    }


async def test_every_system_message_kept_and_same_role_turns_merged(
    gateway: Gateway, upstream: Upstream
) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        await c.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "Rule one."},
                {"role": "user", "content": "first"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]},
                {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
                {"role": "assistant", "content": "an answer"},
                {"role": "system", "content": "Rule three."},
                {"role": "user", "content": "third"},
            ],
            max_completion_tokens=9,
        )
    body = sent(upstream)
    assert body["systemInstruction"] == {
        "parts": [{"text": "Rule one."}, {"text": "Rule two."}, {"text": "Rule three."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
        {"role": "model", "parts": [{"text": "an answer"}]},
        {"role": "user", "parts": [{"text": "third"}]},
    ]
    assert body["generationConfig"] == {"maxOutputTokens": 9}


async def test_vision_parts(gateway: Gateway, upstream: Upstream) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    async with client(gateway, google_headers(upstream)) as c:
        await c.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
                        {"type": "image_url", "image_url": {"url": "gs://bucket/scan.pdf"}},
                    ],
                }
            ],
        )
    assert sent(upstream)["contents"][0]["parts"] == [
        {"text": "compare"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/scan.pdf"}},
    ]


async def test_image_mime_type_from_the_request_wins(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "gs://b/object", "mime_type": "image/heic"}}
                ],
            }
        ],
    }
    resp = await gateway.post(
        "/v1/chat/completions", body, google_headers(upstream, Authorization="Bearer k")
    )
    assert resp.status == 200
    assert sent(upstream)["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/heic", "fileUri": "gs://b/object"}}
    ]


async def test_tools_and_tool_choice_mapping(gateway: Gateway, upstream: Upstream) -> None:
    choices: list[tuple[object, dict[str, object]]] = [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ]
    async with client(gateway, google_headers(upstream)) as c:
        for choice, expected in choices:
            await c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "weather?"}],
                tools=[WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}],
                tool_choice=choice,  # type: ignore[arg-type]
            )
            body = sent(upstream)
            assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "city": {"type": "STRING"},
                            "unit": {"type": "STRING", "nullable": True, "enum": ["c", "f"]},
                        },
                        "required": ["city"],
                    },
                },
                {"name": "now"},
            ]
        }
    ]


async def test_function_call_answer_finishes_tool_calls_and_round_trips(
    gateway: Gateway, upstream: Upstream
) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Paris [mock tool_call=true]"}],
            tools=[WEATHER_TOOL],
        )
        [choice] = answer.choices
        # Gemini says STOP after a function call; OpenAI clients need tool_calls (Portkey says stop).
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        [call] = choice.message.tool_calls or []
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert msgspec.json.decode(call.function.arguments) == {"city": "Paris"}
        assert call.id
        await c.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "Paris"},
                choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
            ],
            tools=[WEATHER_TOOL],
        )
    assert sent(upstream)["contents"] == [
        {"role": "user", "parts": [{"text": "Paris"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21C"}}}],
        },
    ]


async def test_legacy_function_role(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": None, "function_call": {"name": "now", "arguments": "{}"}},
            {"role": "function", "name": "now", "content": "12:00"},
        ],
    }
    resp = await gateway.post(
        "/v1/chat/completions", body, google_headers(upstream, Authorization="Bearer k")
    )
    assert resp.status == 200
    assert sent(upstream)["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "now", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "now", "response": {"output": "12:00"}}}]},
    ]


async def test_tool_result_without_its_call_is_a_400(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        with pytest.raises(openai.BadRequestError) as err:
            await c.chat.completions.create(
                model=MODEL,
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_unknown", "content": "x"},
                ],
            )
    assert "function name" in str(err.value)
    assert upstream.requests == []


async def test_response_format_json_schema(gateway: Gateway, upstream: Upstream) -> None:
    schema = {
        "type": "object",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {
            "answer": {"type": "string", "minLength": 1},
            "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "uniqueItems": True},
        },
        "required": ["answer"],
        "additionalProperties": False,
        "$defs": {"Tag": {"type": "string", "const": "x"}},
    }
    async with client(gateway, google_headers(upstream)) as c:
        await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "json please"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": schema, "strict": True},
            },
        )
        config = sent(upstream)["generationConfig"]
        assert config == {
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {
                    "answer": {"type": "STRING", "minLength": 1},
                    "score": {"type": "NUMBER", "nullable": True},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["x"]}},
                },
                "required": ["answer"],
            },
        }
        await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "json"}],
            response_format={"type": "json_object"},
        )
        assert sent(upstream)["generationConfig"] == {"responseMimeType": "application/json"}


async def test_candidate_count(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert sent(upstream)["generationConfig"] == {"candidateCount": 2}
    assert [ch.index for ch in answer.choices] == [0, 1]


async def test_thoughts_only_in_non_strict_mode(gateway: Gateway, upstream: Upstream) -> None:
    request = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "think"}],
        "thinking": {"type": "enabled", "budget_tokens": 256},
    }
    strict = await gateway.post(
        "/v1/chat/completions", request, google_headers(upstream, Authorization="Bearer k")
    )
    assert sent(upstream)["generationConfig"] == {
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 256}
    }
    answer = await strict.json()
    message = answer["choices"][0]["message"]
    assert message["content"] == "Mock reply to: think" and "content_blocks" not in message
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    # completion_tokens counts the thoughts too, as OpenAI counts reasoning tokens.
    assert answer["usage"]["completion_tokens"] == 4 + 3
    loose = await gateway.post(
        "/v1/chat/completions",
        request,
        google_headers(
            upstream, Authorization="Bearer k", **{"x-portkey-strict-open-ai-compliance": "false"}
        ),
    )
    answer = await loose.json()
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "STOP"
    assert choice["message"]["content_blocks"] == [
        {"type": "thinking", "thinking": "Considering the question."},
        {"type": "text", "text": "Mock reply to: think"},
    ]


async def test_reasoning_effort_becomes_a_thinking_budget(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        await c.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
        )
    assert sent(upstream)["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024}}


async def test_config_target_with_override_params(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "google",
        "api_key": "AIza-from-config",
        "custom_host": google_headers(upstream)["x-portkey-custom-host"],
        "override_params": {"model": "gemini-2.5-pro", "temperature": 0.0},
    }
    headers = {"x-portkey-config": msgspec.json.encode(config).decode()}
    resp = await gateway.post(
        "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, headers
    )
    assert resp.status == 200
    [received] = upstream.requests
    assert received["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert received["headers"]["x-goog-api-key"] == "AIza-from-config"
    assert sent(upstream)["generationConfig"] == {"temperature": 0.0}
    assert (await resp.json())["model"] == "gemini-2.5-pro"


@pytest.mark.parametrize("model", ["../../admin", "gemini/../x", ""])
async def test_model_names_cannot_escape_the_path(gateway: Gateway, upstream: Upstream, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post(
        "/v1/chat/completions", body, google_headers(upstream, Authorization="Bearer k")
    )
    assert resp.status == 400
    assert upstream.requests == []


async def test_thought_signature_round_trips_on_tool_calls(gateway: Gateway, upstream: Upstream) -> None:
    ask = [{"role": "user", "content": "Oslo [mock tool_call=true]"}]
    thinking = {"thinking": {"type": "enabled"}}
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(
            model="gemini-3-pro-preview",
            messages=ask,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            extra_body=thinking,
        )
        message = answer.choices[0].message
        [call] = message.tool_calls or []
        signature = (call.model_extra or {})["extra_content"]["google"]["thought_signature"]
        assert signature
        stream = await c.chat.completions.create(
            model="gemini-3-pro-preview",
            messages=ask,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            extra_body=thinking,
            stream=True,
        )
        deltas = [
            tc
            for ch in [x async for x in stream]
            if ch.choices
            for tc in ch.choices[0].delta.tool_calls or []
        ]
        assert (deltas[0].model_extra or {})["extra_content"]["google"]["thought_signature"]
        await c.chat.completions.create(
            model="gemini-3-pro-preview",
            messages=[
                *ask,  # type: ignore[list-item]
                message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "cold"},
            ],
        )
    model_turn = sent(upstream)["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == signature


async def test_passthrough_reaches_gemini_with_the_key_header(gateway: Gateway, upstream: Upstream) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "count these four words"}]}]}
    headers = google_headers(upstream, Authorization=f"Bearer {GOOGLE_KEY}", **{"x-custom": "kept"})
    resp = await gateway.post(f"/v1/models/{MODEL}:countTokens", body, headers)
    assert resp.status == 200
    assert await resp.json() == {
        "totalTokens": 4,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}],
    }
    [received] = upstream.requests
    assert received["path"] == f"/v1beta/models/{MODEL}:countTokens"
    assert received["headers"]["x-goog-api-key"] == GOOGLE_KEY
    assert received["headers"]["x-custom"] == "kept"
    assert "Authorization" not in received["headers"]
    assert not any(k.lower().startswith("x-portkey-") for k in received["headers"])


async def test_builtin_google_tools_by_function_name(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "news today?"}],
            tools=[
                {"type": "function", "function": {"name": "googleSearch"}},
                {"type": "function", "function": {"name": "code_execution"}},
                WEATHER_TOOL,  # type: ignore[list-item]
            ],
            tool_choice="auto",
        )
        body = sent(upstream)
        assert [list(tool) for tool in body["tools"]] == [
            ["functionDeclarations"],
            ["googleSearch"],
            ["codeExecution"],
        ]
        assert body["tools"][1:] == [{"googleSearch": {}}, {"codeExecution": {}}]
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
        await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "news today?"}],
            tools=[{"type": "function", "function": {"name": "google_search"}}],
            tool_choice="required",
        )
    assert sent(upstream) == {
        "contents": [{"role": "user", "parts": [{"text": "news today?"}]}],
        "tools": [{"googleSearch": {}}],
    }
