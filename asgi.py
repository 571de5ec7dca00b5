"""Entry point for ASGI servers: `hypercorn asgi:app` (or `uvicorn asgi:app`)."""

from app.application import create_app

app = create_app()
