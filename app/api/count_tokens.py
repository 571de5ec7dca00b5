"""POST /v1/messages/count_tokens: Anthropic's count, asked of Anthropic.

Only Anthropic knows how its models tokenize, so the count is forwarded for a model
(or an alias) whose first target is an Anthropic provider; any other model gets a 400
that names it rather than an estimate that would look exact.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from app.api.anthropic_door import anthropic_endpoint, check_version, is_anthropic
from app.api.anthropic_validation import check_count_body
from app.api.http import read_body
from app.api.streams import services_of
from app.api.validation import parse_json_object
from app.errors import InvalidRequest
from app.http_io import header, send_json


@anthropic_endpoint
async def count_tokens(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    check_version(scope)
    services.auth.identify(scope)
    data = parse_json_object(await read_body(scope, receive, services.settings.max_body_bytes))
    model = check_count_body(data, services.limits)
    await services.providers.prepare(model)
    target = services.providers.resolve(model)[0]
    if not is_anthropic(target.provider):
        raise InvalidRequest(
            f"model: token counts are Anthropic's to give, and {model!r} is not an Anthropic "
            "model; this gateway does not estimate them",
            param="model",
        )
    counted = await target.provider.count_tokens(
        orjson.dumps(data), target.model, header(scope, b"anthropic-beta")
    )
    await send_json(send, 200, {"input_tokens": counted})
