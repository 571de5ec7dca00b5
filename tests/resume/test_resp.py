"""Redis commands as RESP bytes: exact framing, any byte, and a real Redis accepts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from app.core.events import Done, Event, Failure, Usage
from app.resume.redis_codec import StreamKeys, decode_entry, encode_batch
from app.resume.redis_source import Entries
from app.resume.resp import Arg, Commands, command
from tests.support.redis_server import RedisServer

SID = "RespTestRespTestResp00"  # of this module only: the Redis server is shared
KEYS = StreamKeys.of(SID)

name = st.sampled_from(["XADD", "PEXPIRE", "DEL", b"SET"])  # redis-py splits a name at spaces
arg = st.one_of(st.binary(), st.text(), st.integers(-(2**63), 2**63 - 1))
args = st.builds(lambda head, tail: [head, *tail], name, st.lists(arg, max_size=8))


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command("PEXPIRE", "k", 60000) == b"*3\r\n$7\r\nPEXPIRE\r\n$1\r\nk\r\n$5\r\n60000\r\n"
    assert command("DEL", b"") == b"*2\r\n$3\r\nDEL\r\n$0\r\n\r\n"
    assert command("INCRBY", "n", -7) == b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n-7\r\n"


def test_a_capped_xadd_is_framed_as_redis_py_frames_it() -> None:
    commands = Commands(2048)
    commands.xadd("sluice:{s}:log", "0-5", {b"v": b'["a"]'})
    assert commands.count == 1
    assert commands.buffer() == (
        b"*8\r\n$4\r\nXADD\r\n$14\r\nsluice:{s}:log\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n"
        b'$4\r\n2048\r\n$3\r\n0-5\r\n$1\r\nv\r\n$5\r\n["a"]\r\n'
    )
    packed = Connection().pack_command(
        "XADD", "sluice:{s}:log", "MAXLEN", "~", 2048, "0-5", b"v", b'["a"]'
    )
    assert commands.buffer() == b"".join(packed)


def test_non_ascii_text_is_counted_in_utf8_bytes() -> None:
    assert (
        command("SET", "clé", "日本")
        == b"*3\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$6\r\n" + ("日本".encode()) + b"\r\n"
    )


def test_binary_arguments_go_as_they_are_crlf_and_nul_included() -> None:
    value = b"a\r\n\x00\xff$3\r\n!"  # 10 bytes
    assert command("SET", b"k", value) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n" + value + b"\r\n"


@pytest.mark.parametrize("arg", [True, 1.5, None])
def test_an_argument_that_is_not_bytes_str_or_int_is_refused(arg: object) -> None:
    with pytest.raises(TypeError):
        command("SET", "k", cast(Arg, arg))


@given(args=args)
def test_any_command_is_packed_byte_for_byte_as_redis_py_packs_it(args: list[Arg]) -> None:
    assert command(*args) == b"".join(Connection().pack_command(*args))


@given(batch=st.lists(args, min_size=1, max_size=5))
def test_many_commands_are_one_buffer_of_each_in_order(batch: list[list[Arg]]) -> None:
    commands = Commands(1024)
    for each in batch:
        commands.add(*each)
    assert commands.count == len(batch)
    assert commands.buffer() == b"".join(command(*each) for each in batch)


def summary(events: list[Event]) -> list[tuple[int, str, str, Done | None, Failure | None]]:
    return [(e.seq, e.kind, e.text, e.done, e.failure) for e in events]


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.delete(*KEYS.all)
    yield client
    await client.delete(*KEYS.all)
    await client.aclose()


async def replies(redis_server: RedisServer, buffer: bytes, count: int) -> list[bytes]:
    """`count` replies to `buffer` sent as it is on a socket of its own (one line each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
    try:
        writer.write(buffer)
        lines: list[bytes] = []
        while len(lines) < count:
            line = await reader.readline()
            if line.startswith(b"$"):  # a bulk string: its value is the next line
                line = await reader.readline()
            lines.append(line.rstrip(b"\r\n"))
        return lines
    finally:
        writer.close()
        await writer.wait_closed()


async def test_redis_accepts_a_flush_buffer_and_stores_what_the_codec_decodes(
    redis: Redis, redis_server: RedisServer
) -> None:
    first = [Event(1, "token", text="héllo\r\n"), Event(2, "token", text="日本 \x00")]
    last = [Event(3, "token", text=""), Event(4, "done", done=Done("stop", Usage(2, 3), 1, 2.5))]
    await redis.set(KEYS.lease, b"node")
    commands = Commands(1024)
    for events in (first, last):
        entry, fields = encode_batch(events)
        commands.xadd(KEYS.log, entry, fields)
    commands.add("PEXPIRE", KEYS.log, 60_000)
    commands.add("DEL", KEYS.lease)
    assert await replies(redis_server, commands.buffer(), commands.count) == [
        b"0-1",
        b"0-3",
        b":1",
        b":1",
    ]
    entries = cast(Entries, await redis.xrange(KEYS.log))
    stored = [e for entry, fields in entries for e in decode_entry(entry, fields)]
    assert summary(stored) == summary(first + last)
    assert 0 < await redis.pttl(KEYS.log) <= 60_000
    assert await redis.exists(KEYS.lease) == 0
