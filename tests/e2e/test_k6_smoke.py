"""`make load` at a smoke size: k6 ramps SSE streams against a Sluice it starts itself."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.sluice_process import REPO

pytestmark = pytest.mark.slow

SMOKE = {
    "LOAD_VUS": "5",
    "LOAD_RAMP": "1s",
    "LOAD_HOLD": "2s",
    "LOAD_TOKENS": "10",
    "LOAD_TPS": "50",
}


def test_make_load_at_smoke_size_meets_every_threshold() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "LOAD_"))}
    # -o: the venv is the one running this test; `make load` must not reinstall it.
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "load"],
        cwd=REPO,
        env={**env, **SMOKE},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout[result.stdout.index("sluice load:") :]
    streams = next(line for line in summary.splitlines() if line.strip().startswith("streams"))
    assert streams.endswith(", 0 did not)")
    thresholds = summary[summary.index("  thresholds") :].splitlines()[1:]
    assert sorted(line.split()[0] for line in thresholds if line.strip()) == [
        "checks",
        "http_req_failed",
        "http_req_waiting",
        "stream_done",
    ]
    assert all(line.endswith(": ok") for line in thresholds if line.strip())
