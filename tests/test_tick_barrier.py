"""benchmarks/tick_barrier.py: the replay of a search's requests under each schedule, and the step-cost fit."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "tick_barrier", Path(__file__).resolve().parents[1] / "benchmarks/tick_barrier.py")
tick_barrier = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tick_barrier)

SCHEDULES = {"lock-step": lambda tick, kind: (tick, kind == "response"), "pipelined": lambda tick, kind: tick,
             "none": None}


def steps(requests, schedule: str, batch_size: int = 8) -> float:
    return tick_barrier.replay(requests, SCHEDULES[schedule], batch_size, lambda rows: 1.0 if rows else 0.0)


def test_each_schedule_waits_where_it_should() -> None:
    # A's expansion is short and its rollout long, B's the other way round.
    crossed = [("A", 0, "step", [1]), ("B", 0, "step", [5, 5]), ("A", 0, "response", [5]), ("B", 0, "response", [1])]
    assert [steps(crossed, s) for s in SCHEDULES] == [10, 6, 6]  # lock-step: 5 + 5; else the longer chain
    # Tick 1 starts at once for A without the barrier (A: 1 + 1 + 4, B: 5 + 1 + 1).
    ticks = [("A", 0, "step", [1]), ("B", 0, "step", [5]), ("A", 0, "response", [1]), ("B", 0, "response", [1]),
             ("A", 1, "step", [4]), ("B", 1, "step", [1])]
    assert [steps(ticks, s) for s in SCHEDULES] == [10, 10, 7]


def test_rows_beyond_the_batch_wait_and_work_is_conserved() -> None:
    requests = [("A", 0, "step", [3, 2]), ("B", 0, "step", [4]), ("A", 0, "response", [2]), ("B", 1, "step", [1])]
    tokens = sum(sum(lengths) for *_, lengths in requests)
    for schedule in SCHEDULES:  # one row at a time: one token a step, whatever the schedule
        assert steps(requests, schedule, batch_size=1) == tokens
        assert tick_barrier.replay(requests, SCHEDULES[schedule], 8, lambda rows: rows) == tokens


def test_step_cost_fit_recovers_a_line() -> None:
    a, b = tick_barrier.fit([(rows, 0.004 + 0.0003 * rows) for rows in (1, 16, 48, 200)])
    assert a == pytest.approx(0.004) and b == pytest.approx(0.0003)
