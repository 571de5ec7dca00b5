"""Entry point for ASGI servers: `hypercorn asgi:app` (or `uvicorn asgi:app`)."""

import gc

from app.application import create_app

app = create_app()
# Strategy: the ~200,000 objects made by importing the app (SDK types, pydantic
# models) live as long as the process. Frozen, they are left out of every
# cyclic collection; otherwise each full collection walks them all (~100 ms,
# a pause that every open stream sees as one late token).
gc.freeze()
