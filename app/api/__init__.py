"""HTTP endpoints: validation (pure), the raw ASGI helpers, and the routes."""
