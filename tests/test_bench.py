"""The compute-unit benchmark prints exactly the issue's keys, and its figures hold the
targets. Compute units are deterministic (no timing), so the targets are asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from decentral_chain.abi import INSTRUCTIONS

BENCH = Path(__file__).resolve().parents[1] / "bench" / "compute_units.py"


def test_compute_units_json_has_exactly_the_keys_and_meets_the_cu_targets():
    proc = subprocess.run([sys.executable, str(BENCH), "--json"], capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    assert set(report) == {"binary_size", "instructions"}
    assert set(report["instructions"]) == {ix.name for ix in INSTRUCTIONS}
    for units in report["instructions"].values():
        assert set(units) == {"total", "own"} and 0 < units["own"] <= units["total"]
    ix = report["instructions"]
    assert ix["settle_job"]["own"] <= 7_000
    assert ix["lock_job"]["total"] <= 6_500
    assert ix["refund_job"]["total"] <= 2_500
    assert ix["deposit"]["own"] <= 2_500
    assert report["binary_size"] == (Path(__file__).resolve().parents[1] / "target/deploy/decentral_escrow.so"
                                     ).stat().st_size


def test_settlement_json_has_exactly_the_keys():
    """Timing targets live in the benchmark, not here: only the report's shape is asserted."""
    bench = BENCH.parent / "settlement.py"
    proc = subprocess.run([sys.executable, str(bench), "--json"], capture_output=True, text=True, check=True,
                          timeout=300)
    report = json.loads(proc.stdout)
    assert set(report) == {"cold_start_s", "jobs_per_s"}
    assert report["cold_start_s"] > 0 and report["jobs_per_s"] > 0


def test_verify_json_has_exactly_the_keys():
    proc = subprocess.run([sys.executable, str(BENCH.parent / "verify.py"), "--json"], capture_output=True,
                          text=True, check=True, timeout=300)
    report = json.loads(proc.stdout)
    assert set(report) == {"receipts_per_s", "sequential_per_s"}
    assert report["receipts_per_s"] > 0 and report["sequential_per_s"] > 0


def test_gateway_json_has_exactly_the_keys():
    proc = subprocess.run([sys.executable, str(BENCH.parent / "gateway.py"), "--json"], capture_output=True,
                          text=True, check=True, timeout=300)
    report = json.loads(proc.stdout)
    assert set(report) == {"added_latency_ms_p50", "tokens_per_s_ratio", "jobs_per_s_8_clients"}
    assert report["tokens_per_s_ratio"] > 0 and report["jobs_per_s_8_clients"] > 0
