"""The benchmarks read a process's SQLite write figures from its /metrics text."""

from __future__ import annotations

import pytest

from bench.common import STORE_SAMPLE, store_delta

pytestmark = pytest.mark.unit

METRICS = """
# TYPE yingji_store_write_transactions_total counter
yingji_store_write_transactions_total{database="yingji_intake"} 400.0
yingji_store_write_transactions_total{database="yingji_platform"} 3.0
yingji_store_write_wait_seconds_total{database="yingji_intake"} 0.2
yingji_store_write_held_seconds_total{database="yingji_intake"} 0.5
"""


def test_the_samples_of_one_file_are_read_by_name() -> None:
    found = [(kind, name, float(v)) for kind, name, v in STORE_SAMPLE.findall(METRICS)]
    assert ("transactions", "yingji_platform", 3.0) in found
    assert [f for f in found if f[1] == "yingji_intake"] == [
        ("transactions", "yingji_intake", 400.0),
        ("wait_seconds", "yingji_intake", 0.2),
        ("held_seconds", "yingji_intake", 0.5),
    ]


def test_the_delta_gives_hold_and_wait_per_write_and_the_share_of_time_held() -> None:
    before = {"transactions": 100.0, "wait_seconds": 0.1, "held_seconds": 0.2}
    after = {"transactions": 300.0, "wait_seconds": 0.3, "held_seconds": 1.2}
    assert store_delta(before, after, 2.0) == {
        "writes": 200,
        "held_ms_per_write": 5.0,
        "wait_ms_per_write": 1.0,
        "held_share": 0.5,
    }
