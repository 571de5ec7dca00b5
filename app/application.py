"""The ASGI application: Starlette routes and lifespan around raw ASGI endpoints.

Streaming endpoints are plain ASGI callables (Starlette hands them the raw
`receive`/`send`); Starlette only routes and runs the lifespan, which builds
the process-wide services and tears them down in order on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from importlib import resources

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.api import anthropic_door, chat, count_tokens, health, models, responses, streams
from app.errors import MethodNotAllowed, NotFound, SluiceError
from app.observability import metrics
from app.observability.context import RequestContext
from app.observability.endpoint import metrics_endpoint
from app.observability.logging import configure_logging
from app.providers.registry import ProviderRegistry
from app.security.cors import CORS
from app.security.exposure import ExposureCheck, warn_at_startup
from app.services import Services
from app.settings import Settings, load_settings
from app.streaming.responder import RELEASE_STATE, SERVER_SEND

log = structlog.get_logger("sluice")


class SluiceApp(Starlette):
    """Starlette, which also leaves the server's `send` in the scope: a
    streaming response sends its headers through the middleware and its body
    straight to the server (`app.streaming.responder`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


def _routes() -> list[Route]:
    return [
        Route("/healthz", health.healthz, methods=["GET", "HEAD"]),
        Route("/readyz", health.readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/v1/streams", streams.create_stream, methods=["POST"]),
        Route("/v1/streams/{stream_id}", streams.get_stream, methods=["GET"]),
        Route("/v1/streams/{stream_id}", streams.delete_stream, methods=["DELETE"]),
        Route("/v1/stream", streams.oneshot_stream, methods=["GET"]),
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/messages", anthropic_door.create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens.count_tokens, methods=["POST"]),
        Route("/v1/responses", responses.create_response, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses.retrieve_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/cancel", responses.cancel_response, methods=["POST"]),
        Route("/v1/models", models.list_models, methods=["GET"]),
        Route("/", _demo_page, methods=["GET", "HEAD"]),
    ]


_DEMO_PAGE = resources.files("app").joinpath("static/index.html").read_bytes()
# The page loads nothing from elsewhere; the policy makes that a guarantee.
_DEMO_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


async def _demo_page(request: Request) -> Response:
    """GET /: the chat page of app/static/index.html (docs/api.md, operations)."""
    return Response(_DEMO_PAGE, media_type="text/html", headers=_DEMO_HEADERS)


def _cors_origins(scope: Scope) -> tuple[str, ...]:
    services: Services = scope["state"]["services"]
    return services.settings.cors_origins


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: SluiceError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 404:
        error = NotFound(f"no route for {request.url.path[:200]}")
    else:
        error = SluiceError(str(exc.detail))
        return JSONResponse(error.to_openai(), status_code=exc.status_code)
    return JSONResponse(error.to_openai(), status_code=error.status)


def create_app(
    settings: Settings | None = None,
    providers: Callable[[], ProviderRegistry] | None = None,
) -> Starlette:
    """The app; `providers` builds a replacement provider registry (tests)."""
    configure_logging()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        services = Services.build(settings or load_settings(), providers and providers())
        app.state.services = services
        log.info("sluice.start", auth=services.auth.enabled)
        warn_at_startup(services.settings)
        await services.start()
        try:
            yield {"services": services, RELEASE_STATE: services.release}
        finally:
            services.draining = True
            await services.aclose()
            metrics.process_exiting()
            log.info("sluice.stop")

    return SluiceApp(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=[
            Middleware(RequestContext),
            Middleware(CORS, origins_of=_cors_origins),
            Middleware(ExposureCheck),
        ],
    )
