"""The mock's OpenAI API operations: files, uploads and batches kept in memory, and audio.

Objects have the fields of OpenAI's API reference (File, Upload, Upload Part, Batch; speech,
transcription and translation answers) and the SDK types' shapes. A batch is run when it is
created: each line of its input file is answered as the mock answers that endpoint, the answers
written to an output file (``output_file_id``); it is ``validating`` when created, ``completed``
when read again.
Errors are OpenAI's: a missing parameter or an unknown id is a 400 or 404 with its message.
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import msgspec

from fastgate.mock import audio
from fastgate.mock.directives import Directives, read_directives
from fastgate.mock.engine import MockEngine, MockPlan
from fastgate.mock.multipart import FormError, FormFile, is_form, parse_form
from fastgate.mock.openai_format import OPENAI, error

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode
_ids = itertools.count(1)
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
BATCH_ENDPOINTS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations"}
)
TRANSCRIBE_FORMATS = frozenset({"json", "text", "srt", "verbose_json", "vtt"})
#: Seconds of speech per character of input, and the most a mock answer lasts.
_SECONDS_PER_CHAR = 0.06
_MAX_SECONDS = 4.0


def _fail(status: int, message: str, param: str | None = None, d: Directives | None = None) -> MockPlan:
    kind = "invalid_request_error"
    body = _encode({"error": {"message": message, "type": kind, "param": param, "code": None}})
    return MockPlan(status=status, body=body, directives=d or Directives())


def _json(obj: Any, d: Directives) -> MockPlan:
    return MockPlan(status=200, body=_encode(obj), directives=d)


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


def plan_operation(
    engine: MockEngine,
    ops: Operations,
    method: str,
    path: str,
    query: dict[str, str],
    content_type: str,
    body: bytes,
) -> MockPlan:
    """The mock's answer to an operation, over HTTP or in-process alike: a JSON body, a form (its
    ``mock`` field a JSON object of directives) or a GET's query is the request."""
    request: dict[str, Any]
    try:
        if is_form(content_type):
            fields, files = parse_form(body, content_type)
            request = {**fields, **files}
            scripted = fields.get("mock")
            if isinstance(scripted, str):
                request["mock"] = _decode(scripted)
        elif body:
            request = _decode(body)
        else:
            request = dict(query)
        d = read_directives(request, engine.defaults)
    except (FormError, msgspec.DecodeError, ValueError) as exc:
        return _fail(400, f"mock: {exc}")
    return engine.planned(f"{method} {path}", request, d, ops)


class Operations:
    """One mock's stored files, uploads and batches, and its answers to every operation."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        """``endpoint`` is ``"<METHOD> <path after /v1/>"``; ``request`` the JSON body, or the
        form's fields and files, or for a GET the query's parameters."""
        method, _, path = endpoint.partition(" ")
        parts = path.split("/")
        kind = parts[0]
        if kind == "files":
            return self._files(method, parts, request, d)
        if kind == "uploads":
            return self._uploads(method, parts, request, d)
        if kind == "batches":
            return self._batches(method, parts, request, d)
        if path == "audio/speech":
            return speech(request, d)
        if path in ("audio/transcriptions", "audio/translations"):
            return transcription(path == "audio/translations", request, d)
        return MockPlan(status=404, body=error(404, f"mock has no endpoint {path}"), directives=d)

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)

    # ------------------------------------------------------------------ files

    def store(self, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-mock{next(_ids)}"
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[file_id] = obj
        self.contents[file_id] = data
        return obj

    def _files(self, method: str, parts: list[str], request: dict[str, Any], d: Directives) -> MockPlan:
        if len(parts) == 1:
            if method == "GET":
                purpose = request.get("purpose")
                found = [f for f in self.files.values() if not purpose or f["purpose"] == purpose]
                return _json(_listing(found), d)
            upload = request.get("file")
            if not isinstance(upload, FormFile):
                return _fail(400, "Missing required parameter: 'file'.", "file", d)
            purpose = request.get("purpose")
            if purpose not in FILE_PURPOSES:
                message = f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'"
                return _fail(400, message, "purpose", d)
            return _json(self.store(upload.filename, str(purpose), upload.data), d)
        file_id = parts[1]
        if file_id not in self.files:
            return _fail(404, f"No such File object: {file_id}", "id", d)
        if len(parts) == 3 and parts[2] == "content":
            return MockPlan(
                status=200,
                body=self.contents[file_id],
                content_type="application/octet-stream",
                directives=d,
            )
        if method == "DELETE":
            del self.files[file_id], self.contents[file_id]
            return _json({"id": file_id, "object": "file", "deleted": True}, d)
        return _json(self.files[file_id], d)

    # ------------------------------------------------------------------ uploads

    def _uploads(self, method: str, parts: list[str], request: dict[str, Any], d: Directives) -> MockPlan:
        if len(parts) == 1:
            for field in ("bytes", "filename", "mime_type", "purpose"):
                if field not in request:
                    return _fail(400, f"Missing required parameter: '{field}'.", field, d)
            upload_id = f"upload_mock{next(_ids)}"
            now = int(time.time())
            self.uploads[upload_id] = obj = {
                "id": upload_id,
                "object": "upload",
                "bytes": request["bytes"],
                "created_at": now,
                "expires_at": now + 3600,
                "filename": request["filename"],
                "purpose": request["purpose"],
                "status": "pending",
                "file": None,
                "part_ids": [],
            }
            return _json(_shown(obj), d)
        upload = self.uploads.get(parts[1])
        if upload is None:
            return _fail(404, f"No such Upload object: {parts[1]}", "upload_id", d)
        action = parts[2] if len(parts) > 2 else ""
        if upload["status"] != "pending":
            return _fail(400, f"Upload {parts[1]} is already {upload['status']}.", None, d)
        if action == "parts":
            data = request.get("data")
            if not isinstance(data, FormFile):
                return _fail(400, "Missing required parameter: 'data'.", "data", d)
            part_id = f"part_mock{next(_ids)}"
            self.parts[part_id] = data.data
            upload["part_ids"].append(part_id)
            part = {
                "id": part_id,
                "object": "upload.part",
                "created_at": int(time.time()),
                "upload_id": parts[1],
            }
            return _json(part, d)
        if action == "complete":
            ids = request.get("part_ids")
            if not isinstance(ids, list) or any(i not in upload["part_ids"] for i in ids):
                return _fail(400, "part_ids must list parts of this upload.", "part_ids", d)
            data = b"".join(self.parts.pop(i) for i in ids)
            if len(data) != upload["bytes"]:
                message = f"The upload was {len(data)} bytes, not the {upload['bytes']} it was created with."
                return _fail(400, message, "bytes", d)
            upload["status"] = "completed"
            upload["file"] = self.store(upload["filename"], upload["purpose"], data)
            return _json(_shown(upload), d)
        if action == "cancel":
            upload["status"] = "cancelled"
            return _json(_shown(upload), d)
        return _fail(404, f"mock has no endpoint uploads/{'/'.join(parts[1:])}", None, d)

    # ------------------------------------------------------------------ batches

    def _batches(self, method: str, parts: list[str], request: dict[str, Any], d: Directives) -> MockPlan:
        if len(parts) == 1:
            if method == "GET":
                return _json(_listing(list(self.batches.values())), d)
            return self._create_batch(request, d)
        batch = self.batches.get(parts[1])
        if batch is None:
            return _fail(404, f"No such Batch object: {parts[1]}", "batch_id", d)
        if len(parts) == 3 and parts[2] == "cancel":
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                return _fail(400, f"Cannot cancel a batch with status '{batch['status']}'.", None, d)
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
            return _json(batch, d)
        if batch["status"] == "validating":  # created as validating; read again, it has ended
            batch["status"] = "completed"
        return _json(batch, d)

    def _create_batch(self, request: dict[str, Any], d: Directives) -> MockPlan:
        endpoint = request.get("endpoint")
        if endpoint not in BATCH_ENDPOINTS:
            return _fail(400, f"Invalid endpoint: {endpoint!r}.", "endpoint", d)
        if request.get("completion_window") != "24h":
            return _fail(400, "completion_window must be '24h'.", "completion_window", d)
        file_id = request.get("input_file_id")
        if file_id not in self.contents:
            return _fail(400, f"No such File object: {file_id}", "input_file_id", d)
        now = int(time.time())
        answers, failed = self._run(str(endpoint), self.contents[str(file_id)])
        output = self.store(f"batch_output_{file_id}.jsonl", "batch_output", answers)
        batch_id = f"batch_mock{next(_ids)}"
        self.batches[batch_id] = batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": output["id"],
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 86400,
            "finalizing_at": now,
            "completed_at": now,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {
                "total": answers.count(b"\n"),
                "completed": answers.count(b"\n") - failed,
                "failed": failed,
            },
            "metadata": request.get("metadata"),
        }
        return _json(batch, d)

    def _run(self, endpoint: str, data: bytes) -> tuple[bytes, int]:
        """Each request line answered as the mock answers ``endpoint`` (Batch API input format)."""
        out = []
        failed = 0
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                item = _decode(line)
                body = item["body"]
                custom_id = item["custom_id"]
            except (msgspec.DecodeError, KeyError, TypeError):
                failed += 1
                continue
            plan = OPENAI.answer(endpoint.removeprefix("/v1/"), body, Directives())
            response = {
                "status_code": plan.status,
                "request_id": f"req_mock{next(_ids)}",
                "body": _decode(plan.body),
            }
            failed += plan.status >= 400
            out.append(
                _encode(
                    {
                        "id": f"batch_req_mock{next(_ids)}",
                        "custom_id": custom_id,
                        "response": response,
                        "error": None,
                    }
                )
            )
        return b"".join(line + b"\n" for line in out), failed


def _shown(upload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in upload.items() if k != "part_ids"}


# ---------------------------------------------------------------------- audio


def speech(request: dict[str, Any], d: Directives) -> MockPlan:
    """Silence as long as the input would take to say, in ``response_format`` (default mp3),
    sent in pieces; ``stream_format: "sse"`` sends it as ``speech.audio.delta`` events."""
    for field in ("model", "input", "voice"):
        if not request.get(field):
            return _fail(400, f"Missing required parameter: '{field}'.", field, d)
    text = str(request["input"])
    if len(text) > 4096:
        return _fail(400, "input is longer than the maximum of 4096 characters.", "input", d)
    fmt = request.get("response_format") or "mp3"
    encode = audio.ENCODERS.get(fmt)
    if encode is None:
        return _fail(400, f"Invalid response_format: '{fmt}'.", "response_format", d)
    data = encode(min(_MAX_SECONDS, max(0.2, len(text) * _SECONDS_PER_CHAR)))
    pieces = max(1, d.chunks)
    size = -(-len(data) // pieces)
    frames = [data[i : i + size] for i in range(0, len(data), size)]
    if request.get("stream_format") == "sse":
        events = [
            b"data: "
            + _encode({"type": "speech.audio.delta", "audio": base64.b64encode(f).decode()})
            + b"\n\n"
            for f in frames
        ]
        tokens = max(1, len(text.split()))
        usage = {"input_tokens": tokens, "output_tokens": tokens * 10, "total_tokens": tokens * 11}
        events.append(b"data: " + _encode({"type": "speech.audio.done", "usage": usage}) + b"\n\n")
        return MockPlan(status=200, frames=events, content_type="text/event-stream", directives=d)
    return MockPlan(status=200, frames=frames, content_type=audio.CONTENT_TYPES[fmt], directives=d)


def transcription(translate: bool, request: dict[str, Any], d: Directives) -> MockPlan:
    """A transcript naming the file (its length read from a WAV header), in ``response_format``;
    ``stream`` sends ``transcript.text.delta`` events and a ``transcript.text.done``."""
    upload = request.get("file")
    if not isinstance(upload, FormFile):
        return _fail(400, "Missing required parameter: 'file'.", "file", d)
    model = request.get("model")
    if not model:
        return _fail(400, "Missing required parameter: 'model'.", "model", d)
    fmt = request.get("response_format") or "json"
    if fmt not in TRANSCRIBE_FORMATS:
        return _fail(400, f"Invalid response_format: '{fmt}'.", "response_format", d)
    seconds = audio.wav_seconds(upload.data) or round(len(upload.data) / 32000, 3)
    verb = "translation" if translate else "transcript"
    text = d.content or f"Mock {verb} of {upload.filename} ({len(upload.data)} bytes)."
    whisper = str(model).startswith("whisper")
    usage: dict[str, Any] = (
        {"type": "duration", "seconds": seconds}
        if whisper
        else {
            "type": "tokens",
            "input_tokens": max(1, int(seconds * 10)),
            "output_tokens": len(text.split()),
            "total_tokens": max(1, int(seconds * 10)) + len(text.split()),
        }
    )
    if str(request.get("stream", "")).lower() == "true" and not translate:
        events = [
            b"data: " + _encode({"type": "transcript.text.delta", "delta": piece}) + b"\n\n"
            for piece in _words(text)
        ]
        done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
        if not whisper:
            done["usage"] = usage
        events.append(b"data: " + _encode(done) + b"\n\n")
        return MockPlan(status=200, frames=events, content_type="text/event-stream", directives=d)
    if fmt == "text":
        return MockPlan(status=200, body=text.encode() + b"\n", content_type="text/plain", directives=d)
    if fmt in ("srt", "vtt"):
        stamp = _srt_time if fmt == "srt" else _vtt_time
        cue = f"{stamp(0.0)} --> {stamp(seconds)}\n{text}\n"
        captions = f"1\n{cue}\n" if fmt == "srt" else f"WEBVTT\n\n{cue}\n"
        return MockPlan(status=200, body=captions.encode(), content_type="text/plain", directives=d)
    if fmt == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": seconds,
            "text": text,
            "tokens": list(range(50364, 50364 + len(text.split()))),
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.01,
        }
        body: dict[str, Any] = {
            "task": "translate" if translate else "transcribe",
            "language": "english",
            "duration": seconds,
            "text": text,
            "segments": [segment],
            "usage": {"type": "duration", "seconds": seconds},
        }
        return _json(body, d)
    return _json({"text": text, "usage": usage}, d)


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _vtt_time(seconds: float) -> str:
    return _srt_time(seconds).replace(",", ".")
