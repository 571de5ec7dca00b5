"""The lock files agree: `uv.lock` pins every package of `requirements-dev.txt` (what
`make test` installs) at the same version, so both name one environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_uv_lock_pins_what_the_requirements_files_install() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {_name(p["name"]): p.get("version") for p in lock["package"]}
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        pinned = {
            _name(m.group(1)): m.group(2)
            for line in (ROOT / requirements).read_text().splitlines()
            if (m := PIN.match(line))
        }
        assert pinned, requirements
        assert {n: locked.get(n) for n in pinned} == pinned, requirements
