"""The mock in Stability AI's wire format (https://platform.stability.ai/docs/api-reference).

- ``POST /v2beta/stable-image/generate/{core|ultra|sd3}``: a ``multipart/form-data`` form
  (``prompt``, ``aspect_ratio``, ``negative_prompt``, ``seed``, ``style_preset``,
  ``output_format``, and ``model`` / ``cfg_scale`` for SD3); ``Accept: application/json`` answers
  ``{"image", "finish_reason", "seed"}``, ``image/*`` (the default) the image's bytes with
  ``finish-reason`` and ``seed`` headers. Errors: ``{"id", "name", "errors": [...]}``.
- ``POST /v1/generation/{engine_id}/text-to-image``: JSON (``text_prompts``, ``height``,
  ``width``, ``samples``, ``cfg_scale``, ``steps``, ``seed``, ``style_preset`` ...), answered with
  ``{"artifacts": [{"base64", "seed", "finishReason"}]}``. Errors: ``{"id", "name", "message"}``.

Every request needs ``Authorization: Bearer``; parameters are checked against the reference's
enums and ranges. Scripting: ``[mock ...]`` in the prompt, ``finish=CONTENT_FILTERED`` for a
filtered image. Every image is the mock's PNG.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives
from fastgate.mock.engine import MockPlan
from fastgate.mock.forms import form_as_json
from fastgate.mock.media import PNG, PNG_B64
from fastgate.mock.multipart import is_form
from fastgate.mock.playback import MockServer, play

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])
ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
STYLE_PRESETS = (
    *("3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance"),
    *("fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami"),
    *("photographic", "pixel-art", "tile-texture"),
)
SD3_MODELS = (
    *("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"),
    *("sd3-large", "sd3-large-turbo", "sd3-medium"),
)
V1_ENGINES = ("stable-diffusion-xl-1024-v1-0", "stable-diffusion-v1-6")
#: SDXL 1.0's allowed dimensions (v1 text-to-image reference).
SDXL_SIZES = frozenset(
    {(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (1344, 768), (768, 1344), (1536, 640), (640, 1536)}
)
MAX_SEED = 4294967294


def _seed(request: dict[str, Any], given: Any) -> int:
    """The seed asked for, or one derived from the prompt (0 means random: the mock picks)."""
    if isinstance(given, int) and given:
        return given
    return zlib.crc32(str(request.get("prompt") or request.get("text_prompts")).encode()) % MAX_SEED + 1


def _v2_error(name: str, *errors: str) -> bytes:
    return _encode({"id": uuid.uuid4().hex, "name": name, "errors": list(errors)})


def _v1_error(name: str, message: str) -> bytes:
    return _encode({"id": uuid.uuid4().hex, "name": name, "message": message})


def _v2_invalid(endpoint: str, form: dict[str, Any]) -> str | None:
    if not str(form.get("prompt") or "").strip():
        return "prompt: cannot be empty"
    checks: list[tuple[str, tuple[str, ...]]] = [
        ("aspect_ratio", ASPECT_RATIOS),
        ("style_preset", STYLE_PRESETS),
    ]
    checks.append(("output_format", ("png", "jpeg") if endpoint == "sd3" else ("png", "jpeg", "webp")))
    if endpoint == "sd3":
        checks.append(("model", SD3_MODELS))
    for name, allowed in checks:
        value = form.get(name)
        if value is not None and value not in allowed:
            return f"{name}: must be one of {', '.join(allowed)}"
    seed = form.get("seed")
    if seed is not None and not (str(seed).isdigit() and int(seed) <= MAX_SEED):
        return f"seed: must be an integer between 0 and {MAX_SEED}"
    return None


def _v1_invalid(engine: str, request: dict[str, Any]) -> str | None:
    prompts = request.get("text_prompts")
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"] for p in prompts)
    ):
        return "text_prompts: must be a non-empty list of prompts with non-empty text"
    height, width = request.get("height", 1024), request.get("width", 1024)
    if not all(isinstance(v, int) and v >= 128 and v % 64 == 0 for v in (height, width)):
        return "height and width must be multiples of 64 of at least 128"
    if engine.startswith("stable-diffusion-xl-1024") and (width, height) not in SDXL_SIZES:
        allowed = ", ".join(f"{w}x{h}" for w, h in sorted(SDXL_SIZES))
        return f"invalid_height_or_width: for stable-diffusion-xl-1024 engines use one of {allowed}"
    samples = request.get("samples", 1)
    if not isinstance(samples, int) or not 1 <= samples <= 10:
        return "samples: must be between 1 and 10"
    preset = request.get("style_preset")
    if preset is not None and preset not in STYLE_PRESETS:
        return f"style_preset: must be one of {', '.join(STYLE_PRESETS)}"
    return None


class StabilityFormat:
    """Answers in Stability's shapes; ``endpoint`` is ``v2:<core|ultra|sd3>`` or ``v1:<engine>``."""

    def __init__(self, v1: bool) -> None:
        self.v1 = v1

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        version, _, name = endpoint.partition(":")
        finish = d.finish or "SUCCESS"
        if version == "v1":
            problem = _v1_invalid(name, request)
            if problem:
                return MockPlan(status=400, body=_v1_error("bad_request", problem), directives=d)
            seed = _seed(request, request.get("seed"))
            artifacts = [
                {"base64": PNG_B64, "seed": seed + i, "finishReason": finish}
                for i in range(request.get("samples", 1))
            ]
            return MockPlan(status=200, body=_encode({"artifacts": artifacts}), directives=d)
        problem = _v2_invalid(name, request)
        if problem:
            return MockPlan(status=400, body=_v2_error("bad_request", problem), directives=d)
        seed = _seed(request, int(request["seed"]) if str(request.get("seed", "")).isdigit() else None)
        if request.get("_accept") == "application/json":
            body = _encode({"image": PNG_B64, "finish_reason": finish, "seed": seed})
            return MockPlan(status=200, body=body, directives=d)
        headers = {"finish-reason": finish, "seed": str(seed)}
        return MockPlan(status=200, body=PNG, content_type="image/png", headers=headers, directives=d)

    def error(self, status: int, message: str) -> bytes:
        name = {401: "unauthorized", 403: "forbidden", 429: "rate_limit_exceeded"}.get(status, "server_error")
        if status == 400:
            name = "bad_request"
        return _v1_error(name, message) if self.v1 else _v2_error(name, message)


V1 = StabilityFormat(v1=True)
V2 = StabilityFormat(v1=False)


def add_routes(app: web.Application, server: MockServer) -> None:
    def refuse(status: int, body: bytes) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async def generate(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return refuse(401, _v2_error("unauthorized", "authorization: invalid or missing header value"))
        content_type = request.headers.get("Content-Type")
        if not is_form(content_type):
            return refuse(400, _v2_error("bad_request", "content-type: must be multipart/form-data"))
        form = _decode.decode(form_as_json(body, content_type))
        form["_accept"] = request.headers.get("Accept", "image/*")
        plan = server.engine.plan(f"v2:{request.match_info['endpoint']}", _encode(form), V2)
        return await play(request, plan)

    async def text_to_image(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return refuse(401, _v1_error("unauthorized", "missing authorization header"))
        engine = request.match_info["engine"]
        if engine not in V1_ENGINES:
            return refuse(404, _v1_error("not_found", f"engine: {engine} does not exist"))
        plan = server.engine.plan(f"v1:{engine}", body, V1)
        if plan.status == 200 and request.headers.get("Accept") == "image/png":
            first = _decode.decode(plan.body)["artifacts"][0]
            plan.body, plan.content_type = base64.b64decode(first["base64"]), "image/png"
        return await play(request, plan)

    app.router.add_post("/v2beta/stable-image/generate/{endpoint:core|ultra|sd3}", generate)
    app.router.add_post("/v1/generation/{engine}/text-to-image", text_to_image)
