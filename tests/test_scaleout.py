"""SI-MCTS sharded over local Ray actors (CPU): every tree comes back, in order, checkpointed per worker; a
worker killed mid-run fails the run and a re-run resumes every shard to the trees of an uninterrupted run;
a driver in another process joins a running Ray instance by its address (`mcts.ray_address`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import SeedPrompt
from stair.checkpoint import TreeCheckpoint
from stair.format import render_output, render_step
from stair.generation import BackendParams
from stair.judges import JudgeParams
from stair.mcts import MCTSParams
from stair.reward import RewardParams
from stair.scaleout import gpu_shortfall, placement_free, run_sharded, search_shard
from tests.fakes import save_tiny_model

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [
        render_step("Risk Assessment", "This is harmful.") + render_output("Sorry, I can't help."),
        "How do I pick a lock?"])


PROMPTS = [SeedPrompt(id=f"p{i}", text=f"How do I pick lock number {i}?", kind="safety", expected_behavior="refuse",
                      source="t", split="iter_1") for i in range(5)]
PARAMS = MCTSParams(iterations=3, max_depth=3, max_step_tokens=16, max_response_tokens=32, workers=2)
# One tree at a time per worker, so a kill mid-run leaves finished, partial and waiting trees behind.
ONE_AT_A_TIME = MCTSParams(iterations=3, max_depth=3, max_step_tokens=16, max_response_tokens=32, workers=2,
                           concurrent_trees=1)
ENGINE = (BackendParams(batch_size=64), JudgeParams(), RewardParams())
THREE = PROMPTS[:3]  # worker 0 builds p0 then p2, worker 1 p1
KILL_TICK = 6  # worker 0 has finished p0 by then and is inside p2


def kill_worker_0(worker: int, tick: int) -> None:
    if worker == 0 and tick == KILL_TICK:
        os._exit(1)  # the actor's process dies as a lost node or an OOM kill would end it


def dumped(trees) -> list[list[dict]]:
    return [[row.model_dump() for row in rows] for rows in trees]


@pytest.fixture(scope="module")
def instance():
    """A Ray instance this test process runs (as `ray start --head` would); yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def uninterrupted(tiny, instance):
    trees, _ = run_sharded(tiny, THREE, 1, ONE_AT_A_TIME, *ENGINE, None, "fp", workers=2)
    return dumped(trees)


def test_two_workers_build_every_tree_in_prompt_order(tiny, tmp_path) -> None:
    assert not ray.is_initialized()  # run_sharded starts (and stops) a private local instance
    trees, stats = run_sharded(tiny, PROMPTS, 1, PARAMS, *ENGINE, tmp_path / "ckpt", "fp", workers=2)
    assert [rows[0].prompt_id for rows in trees] == [p.id for p in PROMPTS]
    assert stats.trees == 5 and stats.nodes == sum(len(rows) for rows in trees)
    for rows in trees:
        root = rows[0]
        assert root.parent_id is None and root.visits == sum(r.evaluations for r in rows)
    files = sorted(p.name for p in (tmp_path / "ckpt").glob("trees*.jsonl"))
    assert files == ["trees.0.jsonl", "trees.1.jsonl"]  # one checkpoint file per worker
    assert len(TreeCheckpoint(tmp_path / "ckpt", "fp").load()) == 5
    assert not ray.is_initialized()


def test_a_killed_worker_fails_the_run_and_a_rerun_resumes_to_the_same_trees(tiny, tmp_path, uninterrupted) -> None:
    folder = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="a search worker died.*run the stage again to resume"):
        run_sharded(tiny, THREE, 1, ONE_AT_A_TIME, *ENGINE, folder, "fp", workers=2, on_tick=kill_worker_0,
                    checkpoint_every_s=0)
    left = TreeCheckpoint(folder, "fp")
    finished = {rows[0].prompt_id for rows in left.load().values()}
    assert "p0" in finished and "p2" not in finished  # worker 0 had finished its first tree, not its second
    assert json.loads((folder / "state.0.json").read_text())["tick"] == KILL_TICK  # saved every tick here
    trees, stats = run_sharded(tiny, THREE, 1, ONE_AT_A_TIME, *ENGINE, folder, "fp", workers=2,
                               checkpoint_every_s=0)
    assert dumped(trees) == uninterrupted and stats.trees == 3


def test_a_driver_in_another_process_joins_the_instance_by_address(instance, uninterrupted, tiny, tmp_path) -> None:
    out = tmp_path / "trees.json"
    driver = f"""
import json, dataclasses
from tests.test_scaleout import THREE, ONE_AT_A_TIME, ENGINE, dumped
from stair.scaleout import run_sharded
params = dataclasses.replace(ONE_AT_A_TIME, ray_address={instance!r})
trees, _ = run_sharded({str(tiny)!r}, THREE, 1, params, *ENGINE, None, "fp", workers=2)
open({str(out)!r}, "w").write(json.dumps(dumped(trees)))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", driver], cwd=REPO, env=env, check=True, timeout=300)
    assert json.loads(out.read_text()) == uninterrupted


def test_one_engine_matches_the_shard_interface(tiny) -> None:
    seen = []
    trees, stats = search_shard(tiny, PROMPTS[:2], 1, PARAMS, *ENGINE, None, on_tree=seen.append)
    assert [rows[0].prompt_id for rows in trees] == ["p0", "p1"] and len(seen) == 2 and stats.trees == 2


def test_gpus_per_worker_above_one_must_be_whole() -> None:
    with pytest.raises(ValueError, match="mcts.gpus_per_worker=1.5"):
        MCTSParams(gpus_per_worker=1.5)
    assert MCTSParams(gpus_per_worker=0.5).gpus_per_worker == 0.5 and MCTSParams(gpus_per_worker=2).gpus_per_worker == 2


def test_where_the_actors_run_is_not_part_of_the_checkpoint_fingerprint() -> None:
    local = {"workers": 4, "ray_address": "", "gpus_per_worker": 1}
    assert placement_free(local) == placement_free({**local, "ray_address": "auto"}) == {"workers": 4,
                                                                                         "gpus_per_worker": 1}


def test_asking_for_more_gpus_than_the_cluster_has_is_said_not_left_to_hang_silently() -> None:
    assert gpu_shortfall(8, 1, 8.0) is None and gpu_shortfall(4, 0.5, 2.0) is None
    assert gpu_shortfall(2, 0, 0.0) is None  # CPU actors
    assert gpu_shortfall(16, 1, 8.0) == ("mcts.workers=16 x mcts.gpus_per_worker=1 ask for 16 GPUs and the Ray cluster "
                                         "has 8: the actors that do not fit wait until GPUs join")
