"""A cheap SSE load client: N concurrent streams under uvloop, each parsed in an asyncio
Protocol's callback (`loadproto.py`); slow readers use raw asyncio streams, which can pause.

It shares a core with the fake upstream, so it must cost little per token: it speaks
just enough HTTP/1.1 (keep-alive, chunked or length-delimited bodies) by hand, and
counts tokens per read with `bytes.count` over the complete SSE events of that read
instead of parsing every event's JSON.

A token is an event carrying content: `event: token` (Sluice's native endpoints) or an
OpenAI chunk with a non-empty `"content":"…"` delta. A stream is complete when it sees
`data: [DONE]` or `event: done`; an `event: error` or `data: {"error"…}` marks it failed.

For each stream it records the time to first token (from writing the request), every
gap between token arrivals (tokens that arrive in one read count as gaps of 0), the
token and byte totals and any error. Slow readers read about `--slow-bps` bytes per
second through a small SO_RCVBUF and a small reader buffer, so the server sees TCP
backpressure. `--leave-after K` closes the connection after K tokens and records when
(`time.monotonic()`, comparable with the fake upstream's /stats on Linux).

The literal `{rid}` in the URL or body is replaced by the request's index, so a request
can name itself to the fake upstream through the model name (`…-rid{rid}`).

Run `python -m bench.loadclient --help`; `--json` prints the summary the runner reads.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.fake_upstream import run
from bench.loadproto import Dechunker, SSEClientProtocol, count_events


@dataclass(slots=True)
class LoadSpec:
    url: str
    method: str = "POST"
    body: str | None = None  # may contain `{rid}`
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1
    requests_per_worker: int = 1
    ramp_s: float = 0.0  # workers start spread evenly over this many seconds
    leave_after: int | None = None  # close after this many tokens
    duration_s: float | None = None  # close each stream after this long
    slow_bps: float | None = None  # read at most this many bytes per second
    rcvbuf: int | None = None  # SO_RCVBUF for slow readers
    timeout_s: float = 60.0


@dataclass(slots=True)
class StreamResult:
    rid: int
    status: int = 0
    ttft: float | None = None
    tokens: int = 0
    bytes: int = 0
    complete: bool = False
    error: str | None = None
    left_at: float | None = None
    started: float = 0.0
    ended: float = 0.0
    gaps: array[float] = field(default_factory=lambda: array("d"))


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


async def _connect(host: str, port: int, spec: LoadSpec) -> _Conn:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if spec.rcvbuf:
        # Set before connect so the advertised window is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, spec.rcvbuf)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    # A small reader buffer for slow readers: asyncio stops reading the socket once
    # twice this much is buffered, so backpressure reaches the server.
    limit = 1024 if spec.slow_bps else 256 * 1024
    reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    return _Conn(reader, writer)


async def _stream(conn: _Conn, request: bytes, spec: LoadSpec, res: StreamResult) -> bool:
    """One request on `conn`; True if the connection may be reused."""
    reader, writer = conn.reader, conn.writer
    res.started = time.monotonic()
    writer.write(request)
    head = b""
    while b"\r\n\r\n" not in head:
        data = await reader.read(65536)
        if not data:
            res.error = "closed before headers"
            return False
        head += data
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    res.status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    chunked = "chunked" in headers.get("transfer-encoding", "")
    length = int(headers["content-length"]) if "content-length" in headers else None
    keep_alive = headers.get("connection") != "close" and (chunked or length is not None)
    dechunker = Dechunker() if chunked else None
    received = 0
    sse = b""
    last = 0.0
    slow = spec.slow_bps
    tick = 0.1
    read_size = max(64, int(slow * tick)) if slow else 65536
    deadline = res.started + (spec.duration_s if spec.duration_s is not None else spec.timeout_s)
    data = rest
    while True:
        if data:
            now = time.monotonic()
            res.bytes += len(data)
            if dechunker is not None:
                payload = dechunker.feed(data)
            else:
                payload = data
                received += len(data)
            if res.status != 200:
                pass  # the body of an error response is not an event stream
            else:
                sse += payload
                cut = max(sse.rfind(b"\n\n") + 2, sse.rfind(b"\r\n\r\n") + 4)
                if cut > 3:
                    tokens, done, failed = count_events(sse[:cut])
                    sse = sse[cut:]
                    if tokens:
                        if res.ttft is None:
                            res.ttft = now - res.started
                            res.gaps.extend([0.0] * (tokens - 1))
                        else:
                            res.gaps.append(now - last)
                            res.gaps.extend([0.0] * (tokens - 1))
                        last = now
                        res.tokens += tokens
                    if failed and res.error is None:
                        res.error = "error event"
                    if done:
                        res.complete = True
            if spec.leave_after is not None and res.tokens >= spec.leave_after:
                res.left_at = time.monotonic()
                return False
            if (dechunker is not None and dechunker.done) or (
                length is not None and received >= length
            ):
                if res.status != 200 and res.error is None:
                    res.error = f"HTTP {res.status}"
                return keep_alive
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if spec.duration_s is not None:
                res.left_at = time.monotonic()
            else:
                res.error = "timeout"
            return False
        if slow:
            await asyncio.sleep(tick)
        try:
            data = await asyncio.wait_for(reader.read(read_size), remaining)
        except TimeoutError:
            data = b""
            continue
        if not data:
            if dechunker is None and length is None:
                return False  # a close-delimited body ends here
            if res.error is None:
                res.error = "connection closed mid-stream"
            return False


async def _worker(
    index: int, spec: LoadSpec, results: list[StreamResult], next_rid: list[int]
) -> None:
    url = urlsplit(spec.url)
    host = url.hostname or "127.0.0.1"
    port = url.port or 80
    if spec.ramp_s > 0 and spec.concurrency > 1:
        await asyncio.sleep(spec.ramp_s * index / spec.concurrency)
    conn: _Conn | None = None
    proto: SSEClientProtocol | None = None
    for _ in range(spec.requests_per_worker):
        rid = next_rid[0]
        next_rid[0] += 1
        res = StreamResult(rid)
        results.append(res)
        target = url.path + (f"?{url.query}" if url.query else "")
        target = target.replace("{rid}", str(rid))
        body = spec.body.replace("{rid}", str(rid)).encode() if spec.body is not None else b""
        lines = [f"{spec.method} {target} HTTP/1.1", f"host: {url.netloc}", "accept: */*"]
        if spec.body is not None:
            lines += ["content-type: application/json", f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in spec.headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        if not spec.slow_bps:
            proto = await _protocol_request(proto, host, port, spec, request, res)
            continue
        reuse = False
        try:
            if conn is None:
                conn = await asyncio.wait_for(_connect(host, port, spec), spec.timeout_s)
            reuse = await _stream(conn, request, spec, res)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
            res.error = f"{type(exc).__name__}: {exc}"
        res.ended = time.monotonic()
        if not reuse and conn is not None:
            conn.writer.close()
            conn = None
    if conn is not None:
        conn.writer.close()
    if proto is not None and proto.transport is not None:
        proto.transport.close()


async def _protocol_request(
    proto: SSEClientProtocol | None,
    host: str,
    port: int,
    spec: LoadSpec,
    request: bytes,
    res: StreamResult,
) -> SSEClientProtocol | None:
    """One request through the Protocol path; the protocol to reuse, if any."""
    reuse = False
    try:
        if proto is None or proto.closed:
            proto = await asyncio.wait_for(_connect_protocol(host, port, spec), spec.timeout_s)
        reuse = await proto.request(request, res, spec.timeout_s)
    except (OSError, ValueError, TimeoutError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    res.ended = time.monotonic()
    if reuse and proto is not None and not proto.closed:
        return proto
    if proto is not None and proto.transport is not None:
        proto.transport.close()
    return None


async def _connect_protocol(host: str, port: int, spec: LoadSpec) -> SSEClientProtocol:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    proto = SSEClientProtocol(spec.leave_after, spec.duration_s)
    await loop.create_connection(lambda: proto, sock=sock)
    return proto


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def summarize(results: list[StreamResult], wall_s: float) -> dict[str, Any]:
    """What the runner reads: totals, TTFTs, gap percentiles, leave times."""
    gaps: list[float] = []
    for res in results:
        gaps.extend(res.gaps)
    errors = [f"rid {r.rid}: {r.error}" for r in results if r.error]
    gap_ms = {
        f"p{q}": (None if (v := _percentile(gaps, q)) is None else v * 1000)
        for q in (50, 90, 99, 99.9)
    }
    gap_ms["max"] = max(gaps) * 1000 if gaps else None
    return {
        "streams": len(results),
        "complete": sum(r.complete for r in results),
        "errors": len(errors),
        "error_samples": errors[:5],
        "tokens": sum(r.tokens for r in results),
        "bytes": sum(r.bytes for r in results),
        "wall_s": wall_s,
        "ttft_ms": [r.ttft * 1000 for r in results if r.ttft is not None],
        "gap_ms": gap_ms,
        "gap_count": len(gaps),
        "left_at": {str(r.rid): r.left_at for r in results if r.left_at is not None},
    }


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    results: list[StreamResult] = []
    next_rid = [0]
    start = time.monotonic()
    await asyncio.gather(*(_worker(i, spec, results, next_rid) for i in range(spec.concurrency)))
    results.sort(key=lambda r: r.rid)
    return summarize(results, time.monotonic() - start)


def _print_human(summary: dict[str, Any]) -> None:
    ttft = summary["ttft_ms"]
    print(
        f"streams {summary['streams']}  complete {summary['complete']}  "
        f"errors {summary['errors']}  tokens {summary['tokens']}  "
        f"wall {summary['wall_s']:.2f}s"
    )
    if ttft:
        print(f"ttft ms p50 {_percentile(ttft, 50):.2f}  p99 {_percentile(ttft, 99):.2f}")
    print("gap ms " + "  ".join(f"{k} {v:.2f}" for k, v in summary["gap_ms"].items() if v))
    for sample in summary["error_samples"]:
        print("error:", sample)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Concurrent SSE streams against one URL.")
    parser.add_argument("url")
    parser.add_argument("--method", default=None, help="default: POST with --body, else GET")
    parser.add_argument("--body", default=None, help="JSON body; `{rid}` is the request index")
    parser.add_argument("-H", "--header", action="append", default=[], help="name: value")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-n", "--requests", type=int, default=1, help="per worker, sequential")
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds to spread starts")
    parser.add_argument("--leave-after", type=int, default=None, help="close after K tokens")
    parser.add_argument("--duration", type=float, default=None, help="close after S seconds")
    parser.add_argument("--slow-bps", type=float, default=None, help="read at most B bytes/s")
    parser.add_argument("--rcvbuf", type=int, default=None, help="SO_RCVBUF bytes")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    headers = {}
    for item in args.header:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()
    spec = LoadSpec(
        url=args.url,
        method=args.method or ("POST" if args.body is not None else "GET"),
        body=args.body,
        headers=headers,
        concurrency=args.concurrency,
        requests_per_worker=args.requests,
        ramp_s=args.ramp,
        leave_after=args.leave_after,
        duration_s=args.duration,
        slow_bps=args.slow_bps,
        rcvbuf=args.rcvbuf,
        timeout_s=args.timeout,
    )
    summary = run(run_load(spec))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    else:
        _print_human(summary)


if __name__ == "__main__":
    main()
