"""benchmarks/which_pairs.py: the subsets of a round's pairs it trains on, by the prompt group of each pair."""

import importlib.util
from pathlib import Path

import pytest

from schemas import StepPair

SPEC = importlib.util.spec_from_file_location(
    "which_pairs", Path(__file__).resolve().parents[1] / "benchmarks/which_pairs.py")
which_pairs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(which_pairs)


def pair(prompt_id: str) -> StepPair:
    return StepPair(prompt_id=prompt_id, prompt="p", prefix=[], chosen="a", rejected="b", chosen_value=2.0,
                    rejected_value=-1.0, chosen_visits=1, rejected_visits=1, chosen_terminal=False,
                    rejected_terminal=False, depth=1, iteration=1, kind="safety")


def test_subsets_split_pairs_by_prompt_group() -> None:
    groups = {"j1": "jailbreak", "j2": "jailbreak", "b1": "benign_sensitive"}
    pairs = [pair("j1"), pair("b1"), pair("j2"), pair("b1")]
    assert which_pairs.select(pairs, groups, "all") == pairs
    assert [p.prompt_id for p in which_pairs.select(pairs, groups, "only:jailbreak")] == ["j1", "j2"]
    assert [p.prompt_id for p in which_pairs.select(pairs, groups, "without:jailbreak")] == ["b1", "b1"]
    assert which_pairs.select(pairs, groups, "only:math") == []
    for bad in ("some", "only:", "except:jailbreak"):
        with pytest.raises(SystemExit, match="expected all, without:<group> or only:<group>"):
            which_pairs.select(pairs, groups, bad)
