"""A real Redis Cluster of the tests' own: 3 primaries and 3 replicas on free
loopback ports, from the same `redis-server` binary, without persistence,
created with `redis-cli --cluster create` and killed at the end of the session.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import _pong, free_port

NODES = 6


def _cli(port: int, *args: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return result.stdout


class RedisClusterServers:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server or redis-cli is missing: run `make system-deps`")
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="sluice-cluster-")
        self.ports = [free_port() for _ in range(NODES)]
        # the cluster bus listens on port + 10000 unless told: a free port of its own
        self._bus_ports = [free_port() for _ in range(NODES)]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._args: list[list[str]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}/"

    def start(self) -> None:
        for port, bus in zip(self.ports, self._bus_ports, strict=True):
            home = Path(self._dir.name) / str(port)
            home.mkdir()
            args = [self._binary, "--bind", "127.0.0.1", "--port", str(port)]
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-port", str(bus)]
            args += ["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"]
            args += ["--dir", str(home)]
            self._args.append(args)
            self._processes.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port, process in zip(self.ports, self._processes, strict=True):
            _until(
                lambda port=port, process=process: _pong(port) or process.poll() is not None,
                "a node did not answer PING",
            )
            if process.poll() is not None:  # its port was taken meanwhile: try other ports
                raise PortTaken(f"redis-server on {port} exited with {process.returncode}")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1"]
        subprocess.run(
            [*create, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def wait_ok(self) -> None:
        """Until every node says cluster_state:ok and every primary has a replica."""
        _until(
            lambda: (
                all("cluster_state:ok" in _cli(p, "cluster", "info") for p in self.ports)
                and len(self.replicas()) == NODES // 2
            ),
            "the cluster did not settle",
        )

    def primary_of(self, key: str) -> int:
        slot = int(_cli(self.ports[0], "cluster", "keyslot", key).strip())
        for line in _cli(self.ports[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return int(fields[1].split(":")[1].split("@")[0])
        raise LookupError(f"no primary for slot {slot}")

    def replicas(self) -> dict[int, int]:
        """primary port -> one of its replicas' port."""
        nodes = [line.split() for line in _cli(self.ports[0], "cluster", "nodes").splitlines()]
        port_of = {f[0]: int(f[1].split(":")[1].split("@")[0]) for f in nodes}
        return {port_of[f[3]]: port_of[f[0]] for f in nodes if "slave" in f[2] and f[3] in port_of}

    def calls(self, *commands: str) -> int:
        """How many times every node has run these commands (INFO commandstats)."""
        wanted = {f"cmdstat_{name.lower()}" for name in commands}
        total = 0
        for port in self.ports:
            for line in _cli(port, "info", "commandstats").splitlines():
                name, _, stats = line.partition(":")
                if name in wanted:
                    total += int(stats.split(",")[0].removeprefix("calls="))
        return total

    def freeze(self, port: int) -> None:
        """SIGSTOP one node: it keeps its sockets and data but answers nothing."""
        self._processes[self.ports.index(port)].send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        self._processes[self.ports.index(port)].send_signal(signal.SIGCONT)

    def restart_empty(self, port: int) -> None:
        """SIGKILL one node and start it again at once, without its data (no
        persistence) but with its cluster identity and slots (nodes.conf): a
        primary that comes back empty before its replica takes over, whose
        replica then copies the empty data set."""
        index = self.ports.index(port)
        process = self._processes[index]
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)
        self._processes[index] = subprocess.Popen(
            self._args[index], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _until(lambda: _pong(port), "the restarted node did not answer PING")

    def failover(self, key: str) -> None:
        """The replica of `key`'s primary takes over (CLUSTER FAILOVER), and the
        cluster settles again."""
        old = self.primary_of(key)
        replica = self.replicas()[old]
        assert _cli(replica, "cluster", "failover").strip() == "OK"
        _until(lambda: self.primary_of(key) == replica, "the failover did not happen")
        self.wait_ok()

    def migrate(self, key: str) -> None:
        """Move `key`'s slot, with its keys, to another primary, as `redis-cli
        --cluster reshard` does: IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE."""
        slot = _cli(self.ports[0], "cluster", "keyslot", key).strip()
        source = self.primary_of(key)
        target = next(p for p in self.replicas() if p != source)
        ids = {port: _cli(port, "cluster", "myid").strip() for port in (source, target)}
        _cli(target, "cluster", "setslot", slot, "importing", ids[source])
        _cli(source, "cluster", "setslot", slot, "migrating", ids[target])
        for _ in range(100):  # bounded: a slot's keys, 100 at a time
            keys = _cli(source, "cluster", "getkeysinslot", slot, "100").split()
            if not keys:
                break
            _cli(source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys)
        for port in (target, source):
            _cli(port, "cluster", "setslot", slot, "node", ids[target])
        _until(lambda: self.primary_of(key) == target, "the slot did not move")
        self.wait_ok()

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a frozen one dies too
                process.kill()
                process.wait(10)
        self._dir.cleanup()


class PortTaken(RuntimeError):
    pass


def _until(check: object, failure: str) -> None:
    for _ in range(300):  # bounded: 30 s
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(failure)


@contextlib.contextmanager
def running_cluster() -> Iterator[RedisClusterServers]:
    for attempt in range(3):  # bounded: a free port can be taken before a node binds it
        cluster = RedisClusterServers()
        try:
            cluster.start()
        except PortTaken:
            cluster.close()
            if attempt == 2:
                raise
            continue
        except BaseException:
            cluster.close()
            raise
        try:
            yield cluster
        finally:
            cluster.close()
        return


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    with running_cluster() as cluster:
        yield cluster
