"""Entry point for ASGI servers: `hypercorn asgi:app` (or `uvicorn asgi:app`)."""

import gc

from app.application import create_app

app = create_app()
# Strategy: the objects made by importing the app live as long as the process.
# Frozen, they are left out of every cyclic collection; otherwise each full
# collection walks them all (a pause that every open stream sees as one late
# token). The SDKs' objects, imported with the first request to a provider, are
# frozen then (app/providers/registry.py).
gc.freeze()
