"""Hostile input against Sluice as shipped (a hypercorn subprocess with
ops/hypercorn.toml): fuzzed JSON bodies, Last-Event-IDs and one-shot queries
get a 2xx or a 4xx with a JSON error, never a 5xx, a hang or a traceback; a
slow-headers client starves nobody; the log holds no key, token or prompt.

Hypothesis drives synchronous httpx requests (bounded by a timeout, so a hang
fails the example); the examples add up to a few hundred.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.helpers import KEY_A, KEY_B, bearer
from tests.security.served import Served, served

CANARY = "canary-prompt-5f1c9e"
FUZZ = settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served() as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, headers=bearer(KEY_A)) as c:
        yield c


def check(response: httpx.Response) -> None:
    """2xx, or a 4xx whose body is OpenAI's error object."""
    assert response.status_code < 500, response.read()
    if response.status_code >= 400:
        error = json.loads(response.read())["error"]
        assert set(error) == {"message", "type", "param", "code"}


def request(client: httpx.Client, method: str, url: str, **kw: object) -> None:
    with client.stream(method, url, **kw) as response:  # type: ignore[arg-type]
        check(response)  # a 2xx stream is closed at once: grace 0 cancels it


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "tool", "x"]),
            "content": st.text(max_size=30) | JSON,
        }
    ),
    max_size=3,
)
NEAR_VALID = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["sim/echo", "sim/lorem", "nope/x", "", "sim/"]) | JSON,
        "messages": MESSAGES | JSON,
    },
    optional={
        "max_tokens": st.integers(-5, 3000) | JSON,
        "temperature": st.floats(allow_nan=True) | JSON,
        "stream": st.booleans() | JSON,
        "sim": st.fixed_dictionaries(
            {}, optional={"tps": st.integers(0, 5), "fail_after": st.integers(-1, 3), "bogus": JSON}
        )
        | JSON,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON}) | JSON,
        "n": JSON,
    },
)
BODIES = NEAR_VALID.map(lambda d: json.dumps(d, allow_nan=True).encode()) | st.binary(max_size=200)


@FUZZ
@given(body=BODIES)
def test_fuzzed_stream_bodies_get_2xx_or_4xx(
    server: Served, client: httpx.Client, body: bytes
) -> None:
    request(client, "POST", f"{server.url}/v1/streams", content=body)


@FUZZ
@given(body=BODIES)
def test_fuzzed_chat_bodies_get_2xx_or_4xx(
    server: Served, client: httpx.Client, body: bytes
) -> None:
    request(client, "POST", f"{server.url}/v1/chat/completions", content=body)


def _stream_id(server: Served, client: httpx.Client) -> str:
    body = {"model": "sim/echo", "messages": [{"role": "user", "content": "a b c"}]}
    response = client.post(f"{server.url}/v1/streams", json=body)
    return str(response.json()["id"])


HEADER_CHARS = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f")
HEADER_TEXT = st.text(HEADER_CHARS, max_size=80)


def last_event_ids(stream_id: str) -> st.SearchStrategy[str]:
    return st.one_of(
        HEADER_TEXT,
        st.builds(
            lambda s, n: f"{s}:{n}",
            st.sampled_from([stream_id, "A" * 22, stream_id[:-1]]),
            st.integers(-3, 2**60) | st.text(HEADER_CHARS, max_size=5),
        ),
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_last_event_ids_get_2xx_or_4xx(
    server: Served, client: httpx.Client, data: st.DataObject
) -> None:
    sid = _stream_id(server, client)
    value = data.draw(last_event_ids(sid))
    where = data.draw(st.sampled_from(["stream", "oneshot", "chat"]))
    by_header = data.draw(st.booleans())
    # h11 (the client) refuses surrounding whitespace in a header; the server would strip it
    headers = {"Last-Event-ID": value.strip(" \t").encode("latin-1")} if by_header else {}
    params = {} if by_header else {"last_event_id": value}
    if where == "stream":
        request(client, "GET", f"{server.url}/v1/streams/{sid}", headers=headers, params=params)
    elif where == "oneshot":
        params = {**params, "model": "sim/echo", "prompt": "x"}
        request(client, "GET", f"{server.url}/v1/stream", headers=headers, params=params)
    else:
        body = {
            "model": "sim/echo",
            "messages": [{"role": "user", "content": "a b c"}],
            "stream": True,
        }
        request(
            client,
            "POST",
            f"{server.url}/v1/chat/completions",
            headers=headers,
            params=params,
            json=body,
        )


QUERY_VALUE = st.text(max_size=20) | st.integers(-10, 10**6).map(str) | st.floats().map(str)
QUERY = st.dictionaries(
    st.sampled_from(
        [
            "model",
            "prompt",
            "max_tokens",
            "temperature",
            "sim_tps",
            "sim_ttft_ms",
            "sim_fail_after",
            "sim_stall_after",
            "last_event_id",
            "token",
            "x",
        ]
    )
    | st.text(max_size=6),
    QUERY_VALUE,
    max_size=6,
)


@FUZZ
@given(query=QUERY)
def test_fuzzed_one_shot_queries_get_2xx_or_4xx(
    server: Served, client: httpx.Client, query: dict[str, str]
) -> None:
    request(client, "GET", f"{server.url}/v1/stream", params=query)


@FUZZ
@given(token=st.text(max_size=120), stream_id=st.text(max_size=70))
def test_fuzzed_tokens_and_stream_ids_get_2xx_or_4xx(
    server: Served, stream_id: str, token: str
) -> None:
    with httpx.Client(timeout=10) as anonymous:
        path = "/v1/streams/" + quote(stream_id, safe="")
        request(anonymous, "GET", server.url + path, params={"token": token})


def _slow_headers(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Trickle a request head one byte every 50 ms until told to stop (bounded: 10 s)."""
    parts = urlsplit(url)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        for byte in head:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            sent[0] += 1
            time.sleep(0.05)


def test_a_slow_headers_client_does_not_stop_others_streaming(server: Served) -> None:
    stop, sent = threading.Event(), [0]
    slow = [threading.Thread(target=_slow_headers, args=(server.url, stop, sent)) for _ in range(8)]
    for thread in slow:
        thread.start()
    try:
        with httpx.Client(timeout=10, headers=bearer(KEY_B)) as client:
            for _ in range(3):
                response = client.get(
                    f"{server.url}/v1/stream",
                    params={"model": "sim/lorem", "prompt": "x", "max_tokens": 50},
                )
                assert response.status_code == 200
                assert b"event: done" in response.content
        assert sent[0] > 0
        assert any(thread.is_alive() for thread in slow)  # still mid-head meanwhile
    finally:
        stop.set()
        for thread in slow:
            thread.join(10)


def test_an_oversized_request_head_is_refused(server: Served) -> None:
    response = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 200_000}, timeout=10)
    assert response.status_code in (400, 431)


def test_the_server_still_streams_and_its_log_holds_no_key_token_prompt_or_traceback(
    server: Served, client: httpx.Client
) -> None:
    body = {"model": "sim/echo", "messages": [{"role": "user", "content": f"say {CANARY}"}]}
    created = client.post(f"{server.url}/v1/streams", json=body).json()
    token = created["url"].split("token=")[1]
    with httpx.Client(timeout=10) as anonymous:
        opened = anonymous.get(server.url + created["url"])
        assert b"event: done" in opened.content
        assert CANARY in opened.text  # the prompt did travel through the server
        assert (
            anonymous.get(f"{server.url}/v1/models", headers=bearer("sk-" + CANARY)).status_code
            == 401
        )
    oneshot = client.get(f"{server.url}/v1/stream", params={"model": "sim/echo", "prompt": CANARY})
    assert b"event: done" in oneshot.content
    chat = client.post(f"{server.url}/v1/chat/completions", json={**body, "stream": True})
    assert b"[DONE]" in chat.content
    time.sleep(0.5)  # let the last log lines reach the file; nothing to await across processes
    log = server.log_text()
    assert "stream.end" in log  # the log is the real one
    for secret in (KEY_A, KEY_B, token, token.split(".")[-1], CANARY):
        assert secret not in log
    assert "Traceback" not in log
    assert '"level": "error"' not in log
