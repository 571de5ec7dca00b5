"""The demo page at GET / in headless Chromium, through a proxy that drops connections.

Sluice runs under real hypercorn in the test's event loop; Playwright's async
API drives Debian's `chromium` from the same loop. The browser reaches Sluice
only through `TcpProxy`, so the test can cut the live EventSource connection
and watch the browser's own reconnection (its request head) go by.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright

from app.settings import Settings
from tests.support.client import read_sse, transcript
from tests.support.server import RunningServer, run_sluice
from tests.support.tcp_proxy import RequestHead, TcpProxy, running_proxy

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 20_000
# Every EventSource the page makes, kept for the test: the browser's own
# reconnection reuses the object, a hand-made retry would create another.
TRACK_EVENT_SOURCES = """
window.eventSources = [];
window.EventSource = class extends window.EventSource {
  constructor(...args) { super(...args); window.eventSources.push(this); }
};
"""
LOREM_TOKENS = 60


@pytest.fixture
async def sluice(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    # A short retry keeps the browser's reconnection quick; the contract's 2 s is a default.
    settings = getattr(request, "param", Settings(retry_ms=200))
    async with run_sluice(settings) as running:
        yield running


@pytest.fixture
async def proxy(sluice: RunningServer) -> AsyncIterator[TcpProxy]:
    port = int(sluice.url.rsplit(":", 1)[1])
    async with running_proxy(port) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    # Debian's chromium, installed by ops/install-system-deps.sh: Playwright's
    # own browser builds are never downloaded.
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


@pytest.fixture
async def page(browser: Browser, proxy: TcpProxy) -> AsyncIterator[Page]:
    opened = await browser.new_page()
    await opened.add_init_script(TRACK_EVENT_SOURCES)
    try:
        await opened.goto(f"{proxy.url}/")
        yield opened
    finally:
        await opened.close()


async def text_of(page: Page, element_id: str) -> str:
    text = await page.eval_on_selector(f"#{element_id}", "el => el.textContent")
    assert isinstance(text, str)
    return text


async def wait_for_state(page: Page, prefix: str) -> None:
    await page.wait_for_function(
        "prefix => document.getElementById('state').textContent.startsWith(prefix)",
        arg=prefix,
        timeout=WAIT_MS,
    )


async def start_lorem(page: Page, *, tps: float, max_tokens: int) -> None:
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#model option')].some(o => o.value === 'sim/lorem')",
        timeout=WAIT_MS,
    )
    await page.get_by_label("Model").select_option("sim/lorem")
    await page.get_by_label("Prompt").fill("tell me a story")
    await page.get_by_text("Options").click()
    await page.get_by_label("Max tokens").fill(str(max_tokens))
    await page.get_by_label("Simulated tokens/s (sim/*)").fill(str(tps))
    await page.get_by_role("button", name="Start").click()


async def event_source_states(page: Page) -> list[int]:
    """readyState of every EventSource the page made (2 is CLOSED)."""
    states: list[int] = await page.evaluate("() => eventSources.map(es => es.readyState)")
    return states


def resumes(stream_id: str) -> Callable[[RequestHead], bool]:
    def matches(head: RequestHead) -> bool:
        last = head.header("last-event-id") or ""
        return head.target == f"/v1/streams/{stream_id}" and last.startswith(f"{stream_id}:")

    return matches


async def uninterrupted_transcript(sluice: RunningServer, stream_id: str) -> tuple[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        result = await read_sse(client, f"{sluice.url}/v1/streams/{stream_id}")
    assert result.terminal is not None
    assert result.terminal.event == "done"
    return transcript(result.events), len(result.tokens)


async def test_page_is_served_at_root_uncached_and_self_contained(sluice: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{sluice.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "new EventSource(" in response.text
    assert re.search(r"(src|href)=\"(https?:)?//", response.text) is None


async def test_model_picker_lists_the_models_of_the_server(
    page: Page, sluice: RunningServer
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        listed = (await client.get(f"{sluice.url}/v1/models")).json()["data"]
    await page.wait_for_function(
        "() => document.querySelectorAll('#model option').length > 0", timeout=WAIT_MS
    )
    options = await page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert options == [model["id"] for model in listed]
    assert await page.get_by_label("Model").input_value() == "sim/echo"


async def test_echo_tokens_appear_and_done_closes_the_event_source(
    page: Page, sluice: RunningServer
) -> None:
    await page.wait_for_function(
        "() => document.querySelectorAll('#model option').length > 0", timeout=WAIT_MS
    )
    await page.get_by_label("Prompt").fill("sluice streams every word back")
    await page.get_by_role("button", name="Start").click()
    await wait_for_state(page, "done")

    assert await text_of(page, "output") == "sluice streams every word back"
    assert await text_of(page, "tokens") == "5"
    assert await event_source_states(page) == [2]  # closed on `done`, before the response ended
    assert await text_of(page, "state") == "done (stop)"
    server = await text_of(page, "server")
    assert re.fullmatch(r"Measured by the server: TTFT \d+ ms, \d+\.\d tokens/s", server)
    assert re.fullmatch(r"\d+ ms", await text_of(page, "ttft"))
    assert re.fullmatch(r"\d+\.\d", await text_of(page, "rate"))


async def test_dropped_connection_resumes_without_gap_or_repeat(
    page: Page, proxy: TcpProxy, sluice: RunningServer
) -> None:
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    await start_lorem(page, tps=20, max_tokens=LOREM_TOKENS)
    await page.wait_for_function(
        "() => Number(document.getElementById('tokens').textContent) >= 10", timeout=WAIT_MS
    )
    stream_id = await text_of(page, "stream-id")
    assert proxy.cut() >= 2  # the browser's side and Sluice's side of the EventSource
    seen_at_cut = int(await text_of(page, "tokens"))

    async with asyncio.timeout(WAIT_MS / 1000):
        resumed = await proxy.wait_for_head(resumes(stream_id))
    await wait_for_state(page, "done")

    expected, count = await uninterrupted_transcript(sluice, stream_id)
    assert count == LOREM_TOKENS
    assert seen_at_cut < LOREM_TOKENS  # the cut landed mid-stream
    assert resumed.method == "GET"
    assert 10 <= int((resumed.header("last-event-id") or "").rsplit(":", 1)[1]) < LOREM_TOKENS
    assert await text_of(page, "output") == expected
    assert await text_of(page, "tokens") == str(LOREM_TOKENS)
    assert await text_of(page, "reconnects") == "1"
    assert await event_source_states(page) == [2]  # one object, reconnected by the browser
    assert re.fullmatch(r"\d+ ms", await text_of(page, "ttft"))
    assert re.fullmatch(r"\d+\.\d", await text_of(page, "rate"))
    assert all(url.startswith(f"{proxy.url}/") for url in fetched)


async def test_terminal_error_event_is_shown_and_stops_the_stream(page: Page) -> None:
    async def fail_after_three(route: Route, request: Request) -> None:
        body = json.loads(request.post_data or "{}")
        body["sim"] = {**body.get("sim", {}), "fail_after": 3}
        await route.continue_(post_data=json.dumps(body))

    await page.route("**/v1/streams", fail_after_three)
    await start_lorem(page, tps=0, max_tokens=LOREM_TOKENS)
    await wait_for_state(page, "error")

    assert await text_of(page, "tokens") == "3"
    problem = await text_of(page, "problem")
    assert problem.startswith("upstream_error: ")
    assert await event_source_states(page) == [2]


@pytest.mark.parametrize("sluice", [Settings(retry_ms=200, api_keys=("demo-key",))], indirect=True)
async def test_with_auth_on_the_key_opens_models_and_a_signed_stream(
    page: Page, proxy: TcpProxy
) -> None:
    await page.wait_for_function(
        "() => document.getElementById('problem').textContent.startsWith('Models: ')",
        timeout=WAIT_MS,
    )
    await page.get_by_text("Options").click()
    await page.get_by_label("API key (when auth is on)").fill("demo-key")
    await page.get_by_label("API key (when auth is on)").press("Tab")
    await page.wait_for_function(
        "() => document.querySelectorAll('#model option').length > 0", timeout=WAIT_MS
    )
    await page.get_by_label("Prompt").fill("only with a key")
    await page.get_by_role("button", name="Start").click()
    await wait_for_state(page, "done")

    assert await text_of(page, "output") == "only with a key"
    assert await text_of(page, "problem") == ""
    stream_id = await text_of(page, "stream-id")
    async with asyncio.timeout(WAIT_MS / 1000):
        opened = await proxy.wait_for_head(
            lambda head: head.target.startswith(f"/v1/streams/{stream_id}?token=")
        )
        created = await proxy.wait_for_head(lambda head: head.target == "/v1/streams")
    assert opened.header("authorization") is None  # EventSource cannot send one
    assert created.header("authorization") == "Bearer demo-key"


async def test_stop_closes_the_event_source_and_cancels_the_stream(
    page: Page, sluice: RunningServer
) -> None:
    await start_lorem(page, tps=10, max_tokens=LOREM_TOKENS)
    await page.wait_for_function(
        "() => Number(document.getElementById('tokens').textContent) >= 2", timeout=WAIT_MS
    )
    await page.get_by_role("button", name="Stop").click()
    await wait_for_state(page, "stopped")
    stream_id = await text_of(page, "stream-id")

    async with httpx.AsyncClient(timeout=10) as client:
        result = await read_sse(client, f"{sluice.url}/v1/streams/{stream_id}")
    assert result.terminal is not None
    assert json.loads(result.terminal.data)["error"]["type"] == "cancelled"
    assert len(result.tokens) < LOREM_TOKENS
    assert await event_source_states(page) == [2]


async def test_reasoning_and_tool_calls_appear_beside_the_answer(page: Page) -> None:
    await page.wait_for_function(
        "() => document.querySelectorAll('#model option').length > 0", timeout=WAIT_MS
    )
    await page.get_by_label("Prompt").fill("look it up")
    await page.get_by_text("Options").click()
    await page.get_by_label("Simulated reasoning tokens (sim/*)").fill("3")
    await page.get_by_label("Simulated tool calls (sim/*)").fill("2")
    await page.get_by_role("button", name="Start").click()
    await wait_for_state(page, "done")

    assert await text_of(page, "state") == "done (tool_calls)"
    assert await text_of(page, "reasoning") == "Lorem ipsum dolor"
    assert await text_of(page, "calls") == (
        'sim_tool {"input":"look it up","call":0}\nsim_tool {"input":"look it up","call":1}'
    )
    assert await text_of(page, "output") == ""
