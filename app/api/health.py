"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from app.api.streams import endpoint, services_of
from app.http_io import send_json


@endpoint
async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, {"status": "ok"})


@endpoint
async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
    services = services_of(scope)
    readiness = await services.readiness()
    body: dict[str, object] = {"status": readiness.status}
    if readiness.reason is not None:
        body["reason"] = readiness.reason
    await send_json(send, readiness.http_status, body)
