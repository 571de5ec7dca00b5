"""Reading a real server's JSON log lines and /metrics in tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.observability.logging import configure_logging

Labels = frozenset[tuple[str, str]]


class LogLines:
    """The JSON lines the in-process server printed to stderr (through capsys)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(json=True, force=True)
        self._capsys = capsys
        self.raw = ""
        self.lines: list[dict[str, object]] = []

    def read(self) -> list[dict[str, object]]:
        """Every line so far; each must be a JSON object."""
        new = self._capsys.readouterr().err
        self.raw += new
        for text in new.splitlines():
            if text.strip():
                line = json.loads(text)
                assert isinstance(line, dict), text
                self.lines.append(line)
        return self.lines

    def named(self, event: str, **match: object) -> list[dict[str, object]]:
        return [
            line
            for line in self.read()
            if line.get("event") == event and all(line.get(k) == v for k, v in match.items())
        ]

    async def one(self, event: str, **match: object) -> dict[str, object]:
        """The single line `event` matching `match`, waiting (bounded) until it is printed."""
        for _ in range(500):
            found = self.named(event, **match)
            if found:
                assert len(found) == 1, found
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event} line matching {match}")


def number(line: dict[str, object], key: str) -> float:
    value = line[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


class Scrape:
    """One /metrics scrape, parsed by prometheus-client's own text parser."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        for family in self.families.values():
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def names(self) -> Iterator[str]:
        return iter(self.families)


async def scrape(client: httpx.AsyncClient, url: str) -> Scrape:
    response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
