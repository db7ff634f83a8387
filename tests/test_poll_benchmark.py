"""The polling benchmark's aims summary (benchmarks/poll.py): what it calls met."""

from __future__ import annotations

from benchmarks.poll import aims


def report(vens: int, vtn_vs_bare: float, p99: float, rss: float) -> dict:
    suffix = "@granian:2x4"
    return {
        "setup": {"vens": vens, "suffixes": {"granian:2x4": suffix}},
        "median_ratios": {f"vtn_vs_bare{suffix}": vtn_vs_bare,
                          f"vtn_304_vs_bare{suffix}": 0.79,
                          f"vtn_vs_openleadr{suffix}": None},
        "medians": {f"vtn{suffix}": {"p99_ms": p99}, f"vtn_304{suffix}": {"p99_ms": 99.9}},
        "vtn_worker_rss_mib": {"granian:2x4": [180.0, rss]},
    }


def test_each_aim_is_judged_against_its_threshold() -> None:
    rows = {aim: (measured, met) for aim, measured, met in
            aims(report(1000, 0.61, 100.0, 120.0))}
    assert rows["granian:2x4: VTN / bare app >= 0.6"] == ("0.61", True)
    assert rows["granian:2x4: 304 / bare app >= 0.8"] == ("0.79", False)
    assert rows["granian:2x4: VTN p99 < 100 ms"] == ("100.0 ms", False)
    assert rows["granian:2x4: 304 p99 < 100 ms"] == ("99.9 ms", True)
    # No OpenLEADR in the run: no such aim; memory is an aim at 10,000 VENs only.
    assert not any("OpenLEADR" in aim or "RSS" in aim for aim in rows)


def test_a_larger_fleet_is_held_to_the_smaller_runs_ratio_and_memory() -> None:
    smaller = report(1000, 0.70, 40.0, 120.0)
    rows = {aim: met for aim, _, met in aims(report(10_000, 0.55, 40.0, 260.0), smaller)}
    assert rows["granian:2x4: VTN / bare at 10,000 VENs within 20% of 1,000"] is False
    assert rows["granian:2x4: worker RSS < 250 MiB at 10,000 VENs"] is False
    rows = {aim: met for aim, _, met in aims(report(10_000, 0.57, 40.0, 200.0), smaller)}
    assert rows["granian:2x4: VTN / bare at 10,000 VENs within 20% of 1,000"] is True
    assert rows["granian:2x4: worker RSS < 250 MiB at 10,000 VENs"] is True
