"""benchmarks/seeds.py: the mean ± 95% CI and the headline numbers it reads from a run's metrics."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("seeds", Path(__file__).resolve().parents[1] / "benchmarks/seeds.py")
seeds = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(seeds)


def test_mean_ci_by_hand() -> None:
    # n = 3, sd = 1: half-width = t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732
    mean, half = seeds.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))
    assert seeds.mean_ci([0.5]) == (0.5, 0.0)
    assert seeds.t95(11) == 2.228  # between tabled dfs: the one below (a wider interval)
    assert seeds.t95(100) == 1.96


def test_headline_reads_a_runs_metrics(tmp_path: Path) -> None:
    def write(name: str, data: dict) -> None:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(data))

    held = {"all": {"reward_mean": 1.5}, "heldout_jailbreak": {"unsafe_rate": 0.25, "reward_mean": 1.0}}
    write("heldout/sft.json", held)
    write("heldout/dpo_2.json", {**held, "all": {"reward_mean": 2.0}})
    write("heldout/dpo_10.json", {**held, "all": {"reward_mean": 2.5}})
    write("search.json", {"greedy@1": {"all": {"reward_mean": 1.0}}, "bon@4": {"all": {"reward_mean": 1.25}}})
    write("pairs/1.json", {"share_min_visits_2": 0.1})
    rows = seeds.headline(tmp_path)
    assert rows["dpo_K reward (all)"] == 2.5  # the last iteration by number, not by name
    assert rows["sft jailbreak unsafe"] == 0.25
    assert rows["search bon@4 - greedy"] == 0.25
    assert rows["pairs@1 share on >=2 visits"] == 0.1
    assert rows["dpo_K - sft reward (all)"] == 1.0  # paired: the loop's change on this seed
    assert rows["dpo_K - sft jailbreak unsafe"] == 0.0
    assert "dpo_K - sft math accuracy" not in rows  # neither run measured it
