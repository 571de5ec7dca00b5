"""Reference passthrough: httpx's API over aiohttp's transport (`httpx-aiohttp`).

aiohttp parses HTTP in C and reads in 16 KB pieces, which makes this the practical
limit of the stack (docs/performance.md); every figure in RESULTS.md is a ratio to it.

`BENCH_UPSTREAM=http://127.0.0.1:PORT hypercorn bench.passthrough_aiohttp:app`
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from bench._passthrough import LIMITS, TIMEOUT, make_app


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AiohttpTransport(limits=LIMITS), timeout=TIMEOUT)


app = make_app(_client)
