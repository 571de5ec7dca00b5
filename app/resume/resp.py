"""PURE: Redis commands as RESP bytes, many to one buffer. No I/O.

A command is an array of bulk strings: `*<n>\\r\\n` then, per argument,
`$<length>\\r\\n<bytes>\\r\\n`. A `str` argument is sent as UTF-8 and an `int`
in decimal, as redis-py sends them; bytes go as they are, so any byte is
allowed. `Commands` collects many commands and `count`s them: the caller
reads exactly that many replies, in order.

Strategy: redis-py's pipeline spends some 15 µs of Python per command
(a command stack, `pack_commands`, a callback per reply) whatever the
command carries, and the flusher sends one XADD per stream per flush: with
a thousand slow streams that is one command per token. Here a command is a
few `%`-formatted pieces appended to one list, and a flush is one
`b"".join` of it; the XADD's constant part (`MAXLEN ~ <cap>`) is encoded
once per `Commands`.
"""

from __future__ import annotations

from collections.abc import Mapping

Arg = bytes | str | int


def arg_bytes(arg: Arg) -> bytes:
    """One argument as Redis receives it."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # an int to Python, but 1 or 0 is never what was meant
        raise TypeError("a bool is no Redis argument; send b'1' or b'0'")
    if isinstance(arg, int):
        return b"%d" % arg
    raise TypeError(f"a Redis argument is bytes, str or int, not {type(arg).__name__}")


def bulk(arg: Arg) -> bytes:
    data = arg_bytes(arg)
    return b"$%d\r\n%b\r\n" % (len(data), data)


def command(*args: Arg) -> bytes:
    """One command, e.g. `command("PEXPIRE", key, 60000)`."""
    return b"*%d\r\n" % len(args) + b"".join([bulk(arg) for arg in args])


class Commands:
    """Commands to send in one write; `count` is the number of replies to read."""

    __slots__ = ("_capped", "_maxlen", "_parts", "args", "count")

    def __init__(self, maxlen: int, *, keep_args: bool = False) -> None:
        self._parts: list[bytes] = []
        self._capped = b"$6\r\nMAXLEN\r\n$1\r\n~\r\n" + bulk(maxlen)  # trimmed lazily by Redis
        self._maxlen = maxlen
        self.count = 0
        # kept for a Redis Cluster, whose client routes each command to its shard
        self.args: list[tuple[Arg, ...]] | None = [] if keep_args else None

    def add(self, *args: Arg) -> None:
        if self.args is not None:
            self.args.append(args)
        self._parts.append(command(*args))
        self.count += 1

    def xadd(self, key: Arg, entry: Arg, fields: Mapping[bytes, bytes]) -> None:
        """`XADD key MAXLEN ~ <maxlen> entry field value ...`"""
        if self.args is not None:
            flat = [x for name, value in fields.items() for x in (name, value)]
            self.args.append(("XADD", key, "MAXLEN", "~", self._maxlen, entry, *flat))
        parts = self._parts
        parts.append(b"*%d\r\n$4\r\nXADD\r\n" % (6 + 2 * len(fields)))
        parts.append(bulk(key))
        parts.append(self._capped)
        parts.append(bulk(entry))
        for name, value in fields.items():
            parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(name), name, len(value), value))
        self.count += 1

    def buffer(self) -> bytes:
        return b"".join(self._parts)
