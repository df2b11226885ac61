"""Where a custom host goes in an upstream URL, as Portkey puts it.

Portkey builds every upstream URL as ``getBaseURL() + getEndpoint()`` and a custom host replaces
exactly the base (``src/handlers/services/providerContext.ts``, ``getFullURL``); each provider's
``src/providers/<name>/api.ts`` says which part of the path is its base and which its endpoint.
Where the API version belongs to the endpoint (``google``: ``/v1beta/models/...``, ``together-ai``:
``/v1/chat/completions``) a custom host is the server's root. Users also give it with the version,
or with a trailing slash; both still make a working URL here, where Portkey would double them.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: An API version path segment: ``v1``, ``v2``, ``v1beta``, ``v1alpha``.
_VERSION = re.compile(r"v\d+[a-z0-9]*")
#: Path segments looked at for a version the host repeats (``/api/v1`` for ``lepton``).
_LEADING = 3


@lru_cache(maxsize=1024)  # a client sends the same host and paths again and again
def under_host(host: str, path: str) -> str:
    """``path`` under a custom ``host``: a trailing slash on the host is dropped, and leading
    segments of the path up to a version the host already ends with are not repeated
    (``http://proxy/v1beta`` + ``/v1beta/models/x`` gives one ``/v1beta``)."""
    host = host.rstrip("/")
    segments = path.split("/", _LEADING + 1)[1 : _LEADING + 1]
    for count in range(len(segments), 0, -1):
        if _VERSION.fullmatch(segments[count - 1]):
            lead = "/" + "/".join(segments[:count])
            if host.endswith(lead):
                return host + path[len(lead) :]
    return host + path
