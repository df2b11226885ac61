"""OpenAI's API operations beyond inference: files, batches, uploads, audio, image edits.

Their bodies and answers go through as they are, at the path the client used: an upload
(a multipart form) streams to the upstream as it arrives, a JSON body is read whole (and takes a
config's ``override_params``); a 2xx answer that is JSON is read whole, any other (audio, a file's
content, transcription events) is relayed as it arrives. Routing, keys, limits, retries, fallbacks
and timeouts apply as to a chat request; the request's ``model`` (a JSON field, or a form field
before the file) routes a plain OpenAI client and is what a key's allowed models are checked on.
"""

from __future__ import annotations

import msgspec

from fastgate.gateway.handlers import Gateway, body_error
from fastgate.gateway.pipeline import Exchange
from fastgate.gateway.uploads import ReplayableBody
from fastgate.providers.base import Endpoint
from fastgate.schema.openai import RequestView
from fastgate.server.messages import Request, Response

_EMPTY_VIEW = RequestView()
_view = msgspec.json.Decoder(RequestView).decode


async def operation(gateway: Gateway, endpoint: Endpoint, request: Request) -> Response | None:
    """The handler of an API operation route (``App`` binds ``gateway`` and ``endpoint``)."""
    upload = ReplayableBody(request.upload) if request.upload is not None else None
    ex = Exchange(
        request=request,
        endpoint=endpoint,
        headers=request.headers,
        body=request.body,
        upload=upload,
        view=_EMPTY_VIEW,
    )
    try:
        gateway.pipeline.arrive(ex)
        ex.opts = opts = gateway.reader.read(request.headers)
        model: str | None = None
        if upload is not None:
            if request.content_type == "multipart/form-data":
                model = (await upload.form_fields(request.headers["content-type"])).get("model")
        elif request.body and request.content_type in ("", "application/json"):
            try:
                ex.view = _view(request.body)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise body_error(exc) from None
            model = ex.view.model
        if model and ex.view is _EMPTY_VIEW:
            ex.view = RequestView(model=model)
        plan = opts.plan or gateway.reader.plan_for_model(model, opts)
    except BaseException as refusal:
        gateway._refused(ex, refusal)
        raise
    # The path after /v1, still percent-encoded, as the passthrough sends it.
    return await gateway._route(ex, plan, path=request.path[len("/v1") :], query=request.query)
