"""GET /v1/models: OpenAI's list shape, one entry per configured model and alias."""

from __future__ import annotations

import time

from starlette.types import Receive, Scope, Send

from app.api.streams import endpoint, services_of
from app.http_io import send_json

# Sluice cannot know when an upstream model was made; it reports when this
# process started serving it, which is stable for the life of the process.
_STARTED = int(time.time())


def model_entry(name: str) -> dict[str, object]:
    """`owned_by` is the provider part of the name; an alias belongs to the gateway."""
    provider, sep, _ = name.partition("/")
    return {
        "id": name,
        "object": "model",
        "created": _STARTED,
        "owned_by": provider if sep else "sluice",
    }


@endpoint
async def list_models(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    services.auth.identify(scope)
    names = services.providers.model_names()
    await send_json(send, 200, {"object": "list", "data": [model_entry(n) for n in names]})
