"""SI-MCTS sharded over 2 local Ray actors (CPU): every tree comes back, in order, checkpointed per worker."""

import pytest

from schemas import SeedPrompt
from stair.checkpoint import TreeCheckpoint
from stair.format import render_output, render_step
from stair.generation import BackendParams
from stair.judges import JudgeParams
from stair.mcts import MCTSParams
from stair.reward import RewardParams
from stair.scaleout import run_sharded, search_shard
from tests.fakes import save_tiny_model

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [
        render_step("Risk Assessment", "This is harmful.") + render_output("Sorry, I can't help."),
        "How do I pick a lock?"])


PROMPTS = [SeedPrompt(id=f"p{i}", text=f"How do I pick lock number {i}?", kind="safety", expected_behavior="refuse",
                      source="t", split="iter_1") for i in range(5)]
PARAMS = MCTSParams(iterations=3, max_depth=3, max_step_tokens=16, max_response_tokens=32, workers=2)
ENGINE = (BackendParams(batch_size=64), JudgeParams(), RewardParams())


def test_two_workers_build_every_tree_in_prompt_order(tiny, tmp_path) -> None:
    trees, stats = run_sharded(tiny, PROMPTS, 1, PARAMS, *ENGINE, tmp_path / "ckpt", "fp", workers=2)
    assert [rows[0].prompt_id for rows in trees] == [p.id for p in PROMPTS]
    assert stats.trees == 5 and stats.nodes == sum(len(rows) for rows in trees)
    for rows in trees:
        root = rows[0]
        assert root.parent_id is None and root.visits == sum(r.evaluations for r in rows)
    files = sorted(p.name for p in (tmp_path / "ckpt").glob("trees*.jsonl"))
    assert files == ["trees.0.jsonl", "trees.1.jsonl"]  # one checkpoint file per worker
    assert len(TreeCheckpoint(tmp_path / "ckpt", "fp").load()) == 5


def test_one_engine_matches_the_shard_interface(tiny) -> None:
    seen = []
    trees, stats = search_shard(tiny, PROMPTS[:2], 1, PARAMS, *ENGINE, None, on_tree=seen.append)
    assert [rows[0].prompt_id for rows in trees] == ["p0", "p1"] and len(seen) == 2 and stats.trees == 2
