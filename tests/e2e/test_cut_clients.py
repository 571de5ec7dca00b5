"""Real SSE clients cut at chosen bytes inside blocks, through `TcpProxy`: the
browser's EventSource (headless Chromium) and `@microsoft/fetch-event-source`
under Node. What each client dispatched, joined across its reconnections, must
equal the uncut stream.

fetch-event-source takes an id as soon as it parses the `id:` line, not when
the block ends. Since `id:` is the last field of every block, only a cut between
that line and the blank line after it makes it skip the block (the server
cannot see the difference from a cut after the block): the offsets that must
pass are tested, and that one window is shown for what it is.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Route, async_playwright

from app.settings import Settings
from tests.support.server import RunningServer, run_sluice
from tests.support.sse_parser import SSEParser
from tests.support.tcp_proxy import TcpProxy, running_proxy

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
FES = NODE_DIR / "node_modules" / "@microsoft" / "fetch-event-source" / "package.json"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROMPT = "alpha beta gamma delta epsilon zeta"
Message = tuple[str, str]  # (event type, data)


def install_fetch_event_source() -> None:
    """`npm ci` from the committed lock, once: skipped when the locked version is there."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/@microsoft/fetch-event-source"]["version"]
    if FES.exists() and json.loads(FES.read_text())["version"] == wanted:
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is missing: run `make system-deps`"
    subprocess.run(
        [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def node_client() -> Path:
    install_fetch_event_source()
    return NODE_DIR / "fes_client.cjs"


@pytest.fixture
async def sluice() -> AsyncIterator[RunningServer]:
    async with run_sluice(Settings(retry_ms=50, sim_tps=0, heartbeat_s=5)) as running:
        yield running


@pytest.fixture
async def proxy(sluice: RunningServer) -> AsyncIterator[TcpProxy]:
    async with running_proxy(int(sluice.url.rsplit(":", 1)[1])) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is missing: run `make system-deps`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def blocks(body: bytes) -> list[tuple[int, int]]:
    """(start, end) of every block, `end` at the blank line's own newline."""
    spans, start = [], 0
    while (end := body.find(b"\n\n", start)) >= 0:
        spans.append((start, end + 1))
        start = end + 2
    return spans


def inside(body: bytes, block: int) -> dict[str, int]:
    """Cut offsets inside one block: in its data line, before and in its id line,
    and between the id line and the blank line (fetch-event-source's window)."""
    start, end = blocks(body)[block]
    id_line = body.rindex(b"\nid: ", start, end) + 1
    return {
        "in-data": body.index(b"data: ", start) + 9,
        "before-id": id_line,
        "in-id": id_line + 6,
        "after-id": end,  # the id line is whole, the blank line is not
    }


def messages(body: bytes) -> list[Message]:
    parser = SSEParser()
    parser.feed(body)
    return [(e.event, e.data) for e in parser.events]


async def uncut(client: httpx.AsyncClient, url: str, body: object = None) -> bytes:
    method = "POST" if body is not None else "GET"
    async with client.stream(method, url, json=body) as response:
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def new_stream(client: httpx.AsyncClient, url: str) -> str:
    body = {"model": "sim/echo", "messages": [{"role": "user", "content": PROMPT}]}
    response = await client.post(f"{url}/v1/streams", json=body)
    assert response.status_code == 201
    return str(response.json()["id"])


EVENT_SOURCE = """
([url, waitMs]) => new Promise((resolve, reject) => {
  const got = [];
  const source = new EventSource(url);
  const fail = () => { source.close(); reject(new Error(JSON.stringify(got))); };
  const timer = setTimeout(fail, waitMs);
  for (const type of ["token", "done", "error"]) {
    source.addEventListener(type, (event) => {
      if (event.data === undefined) return;  // a connection error: it reconnects
      got.push([type, event.data]);
      if (type !== "token") { clearTimeout(timer); source.close(); resolve(got); }
    });
  }
})
"""


async def read_with_event_source(browser: Browser, proxy: TcpProxy, path: str) -> list[Message]:
    context = await browser.new_context()
    try:
        page = await context.new_page()

        async def blank(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body="<!doctype html>")

        await page.route(f"{proxy.url}/", blank)  # the page costs no connection
        await page.route("**/favicon.ico", lambda route: route.fulfill(status=404))
        await page.goto(f"{proxy.url}/")
        got = await page.evaluate(EVENT_SOURCE, [f"{proxy.url}{path}", 20_000])
        return [(str(t), str(d)) for t, d in got]
    finally:
        await context.close()


async def test_event_source_cut_inside_any_block_gets_every_event_once(
    sluice: RunningServer, proxy: TcpProxy, browser: Browser
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        sid = await new_stream(client, sluice.url)
        body = await uncut(client, f"{sluice.url}/v1/streams/{sid}")
    whole = messages(body)
    offsets = {
        "opening": 10,
        **inside(body, 3),
        **{f"end-{k}": v for k, v in inside(body, -1).items()},
    }
    for name, k in offsets.items():
        before = len(proxy.heads)
        proxy.cut_next(k)
        got = await read_with_event_source(browser, proxy, f"/v1/streams/{sid}")
        assert got == whole, (name, k)
        resumed = proxy.heads[before + 1 :]
        assert resumed, (name, "the browser reconnected")
        held = resumed[0].header("last-event-id")
        assert held is None or held.startswith(f"{sid}:"), (name, held)


async def read_with_fetch_event_source(node: Path, url: str, body: object = None) -> list[Message]:
    args = [str(node), url] + ([json.dumps(body)] if body is not None else [])
    process = await asyncio.create_subprocess_exec(
        "node", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["attempts"] >= 2, "the client was cut and retried"
    return [(m["event"], m["data"]) for m in result["messages"]]


async def test_fetch_event_source_cut_inside_a_native_block_gets_every_event_once(
    sluice: RunningServer, proxy: TcpProxy, node_client: Path
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        sid = await new_stream(client, sluice.url)
        body = await uncut(client, f"{sluice.url}/v1/streams/{sid}")
    whole = messages(body)
    for block in (1, 3, -1):
        spots = inside(body, block)
        del spots["after-id"]  # the window: see the next test
        for name, k in spots.items():
            proxy.cut_next(k)
            got = await read_with_fetch_event_source(node_client, f"{proxy.url}/v1/streams/{sid}")
            assert got == whole, (block, name, k)


async def test_fetch_event_source_cut_inside_a_chat_block_gets_every_chunk_once(
    sluice: RunningServer, proxy: TcpProxy, node_client: Path
) -> None:
    request = {
        "model": "sim/echo",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        body = await uncut(client, f"{sluice.url}/v1/chat/completions", request)
    whole = messages(body)
    # the role chunk is the first block: a cut inside it leaves no id, and the
    # retried POST is a new generation; from the first token on, it resumes
    for block in (1, -3, -2):  # first token, finish, usage
        spots = inside(body, block)
        del spots["after-id"]
        for name, k in spots.items():
            proxy.cut_next(k)
            url = f"{proxy.url}/v1/chat/completions"
            got = await read_with_fetch_event_source(node_client, url, request)
            sid = stream_of(got)  # each test POST is a generation of its own
            assert got == same_stream(whole, got), (block, name, k)
            held = proxy.heads[-1].header("last-event-id") or ""
            assert held.startswith(f"{sid}:"), (block, name, "a resume, not a new POST")


def stream_of(chunks: list[Message]) -> str:
    return str(json.loads(chunks[0][1])["id"]).removeprefix("chatcmpl-")


def same_stream(chunks: list[Message], like: list[Message]) -> list[Message]:
    """`chunks` as the stream of `like` would carry them: its id and `created`
    are all that differ between two generations of one request."""
    first = json.loads(like[0][1])
    renamed = []
    for event, data in chunks:
        if data.startswith("{"):
            chunk = json.loads(data)
            chunk.update(id=first["id"], created=first["created"])
            data = json.dumps(chunk, separators=(",", ":"))
        renamed.append((event, data))
    return renamed


async def test_fetch_event_source_cut_after_an_id_line_skips_that_block_only(
    sluice: RunningServer, proxy: TcpProxy, node_client: Path
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        sid = await new_stream(client, sluice.url)
        body = await uncut(client, f"{sluice.url}/v1/streams/{sid}")
    whole = messages(body)
    proxy.cut_next(inside(body, 3)["after-id"])
    got = await read_with_fetch_event_source(node_client, f"{proxy.url}/v1/streams/{sid}")
    # block 3 is the third token (block 0 is the opening): the client holds its
    # id without having dispatched it, which no server can tell from having sent it
    assert got == whole[:2] + whole[3:]
