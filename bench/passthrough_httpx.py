"""Reference passthrough over httpx's default transport (pure-Python HTTP parsing).

`BENCH_UPSTREAM=http://127.0.0.1:PORT hypercorn bench.passthrough_httpx:app`
"""

from __future__ import annotations

import httpx

from bench._passthrough import LIMITS, TIMEOUT, make_app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT)


app = make_app(_client)
