"""SI-MCTS for the mcts stage: one engine (`search_shard`), or prompts sharded across Ray actors with one
backend and judge each (`run_sharded`), on a private local Ray instance or an existing Ray cluster, the
actors asking for CPUs or GPUs (a vLLM engine spans the GPUs of its actor).

Each actor runs the same lock-step `SIMCTS` on its shard and checkpoints finished trees to its own
file in the shared checkpoint folder, so a killed run resumes per tree exactly as a single engine
does. Results come back as rows and are merged in the caller's prompt order. Ray is an optional extra
(`pip install -e ".[ray]"`) and is imported only here.
"""

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from schemas import SeedPrompt, TreeNode
from stair.checkpoint import TreeCheckpoint
from stair.generation import BackendParams, make_backend, restore_sampling_state, sampling_state
from stair.judges import JudgeParams, build_judge
from stair.mcts import SIMCTS, MCTSParams, SearchStats, make_trees
from stair.modeling import chat_prompt
from stair.reward import RewardParams

log = logging.getLogger(__name__)


# How often the whole search state is saved: a kill loses at most this much search (plus one tick).
CHECKPOINT_EVERY_S = 30.0


def search_shard(policy: Path, prompts: Sequence[SeedPrompt], iteration: int, params: MCTSParams,
                 backend_params: BackendParams, judge_params: JudgeParams, reward: RewardParams,
                 checkpoint: TreeCheckpoint | None, seed_offset: int = 0,
                 on_tree: Callable[[list[TreeNode]], None] = lambda rows: None,
                 on_tick: Callable[[int], None] = lambda tick: None,
                 checkpoint_every_s: float = CHECKPOINT_EVERY_S,
                 ) -> tuple[list[list[TreeNode]], SearchStats]:
    """Build the trees of `prompts` with one engine; returns each tree's rows (in prompt order) and stats.

    With a checkpoint, every finished tree is saved as it finishes, and the whole search state (partial
    trees, waiting order, the backend's sampling state, counters) after the first tick and then every
    `checkpoint_every_s` seconds (without the tick barrier: at a quiet point every `checkpoint_every_s`
    seconds, see `SIMCTS.run`); a run resumed from it repeats the interrupted run's remaining ticks, so it
    writes the same trees (a judge model of its own keeps no sampling state to save; the prompt cache is
    computed afresh, see `stair.mcts`). Without a saved state it starts over. `on_tree` sees every finished
    tree (restored ones first); `on_tick` the number of each tick (or quiet point) done (a test's kill switch).
    """
    backend = make_backend(policy, backend_params, seed=params.seed + seed_offset)
    # 'self' is the policy searched here (the paper's self-rewarding); any other judge model is loaded once.
    judge = build_judge(judge_params, reward, backend_params, self_model=policy, policy=(policy, backend),
                        seed=params.seed + seed_offset)
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), iteration, params.seed)
    by_id = {t.tree_id: t for t in trees}
    search = SIMCTS(backend, judge, params)
    state = checkpoint.load_state() if checkpoint is not None else None
    done: dict[str, list[TreeNode]] = {}
    active, waiting, tick = [], trees, 0
    if state is not None:
        active = [by_id[s["tree_id"]].restore(s) for s in state["active"]]
        waiting = [by_id[tree_id] for tree_id in state["waiting"]]
        pending = {t.tree_id for t in active + waiting}
        done = {k: rows for k, rows in checkpoint.load().items() if k in by_id and k not in pending}
        restore_sampling_state(backend, state["backend"])
        search.stats = SearchStats(**state["stats"])
        tick = state["tick"]
        log.info("resuming at tick %d: %d trees finished, %d in progress, %d waiting", tick, len(done), len(active),
                 len(waiting))
        for rows in done.values():
            on_tree(rows)

    def finish(tree) -> None:
        rows = tree.rows(iteration)
        if checkpoint is not None:
            checkpoint.save(rows)
        done[tree.tree_id] = rows
        on_tree(rows)

    last_save = -math.inf

    def after_tick(active_now: list, waiting_now: list) -> None:
        nonlocal tick, last_save
        tick += 1
        if checkpoint is not None and time.monotonic() - last_save >= checkpoint_every_s:
            checkpoint.save_state({
                "tick": tick, "active": [t.state() for t in active_now], "waiting": [t.tree_id for t in waiting_now],
                "backend": sampling_state(backend), "stats": dataclasses.asdict(search.stats)})
            last_save = time.monotonic()
        on_tick(tick)

    search.run(waiting, on_done=finish, active=active, on_tick=after_tick, quiet_every_s=checkpoint_every_s)
    return [done[t.tree_id] for t in trees], search.stats


def placement_free(mcts: dict) -> dict:
    """The raw `mcts` params without `ray_address`, for the checkpoint fingerprint: where the actors run does
    not change the trees, so a search resumed on a cluster keeps what a local run checkpointed."""
    return {key: value for key, value in mcts.items() if key != "ray_address"}


def gpu_shortfall(workers: int, gpus_per_worker: float, cluster_gpus: float) -> str | None:
    """Why the actors would wait for GPUs the Ray cluster does not have (now), or None if they fit."""
    wanted = workers * gpus_per_worker
    if wanted <= cluster_gpus:
        return None
    return (f"mcts.workers={workers} x mcts.gpus_per_worker={gpus_per_worker:g} ask for {wanted:g} GPUs and the Ray "
            f"cluster has {cluster_gpus:g}: the actors that do not fit wait until GPUs join")


def run_sharded(policy: Path, prompts: Sequence[SeedPrompt], iteration: int, params: MCTSParams,
                backend_params: BackendParams, judge_params: JudgeParams, reward: RewardParams,
                checkpoint_folder: Path | None, fingerprint: str, workers: int,
                threads_per_worker: int = 1, on_tick: Callable[[int, int], None] | None = None,
                checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> tuple[list[list[TreeNode]], SearchStats]:
    """Shard `prompts` round-robin over `workers` Ray actors; merge their trees in prompt order.

    Ray runs where `params.ray_address` says: "" starts a private local instance (unless this process is
    already connected to one), `auto` or an address joins an existing cluster. Each actor asks Ray for
    `threads_per_worker` CPUs and `params.gpus_per_worker` GPUs (a vLLM engine spans the GPUs it gets). Actors
    work in this process's folder, so relative paths (models, checkpoints) mean the same on every node: a
    cluster needs the project on storage shared at the same path. Actor `i` checkpoints to
    `trees.<i>.jsonl` in `checkpoint_folder`; if one dies the run fails, and a re-run with the same workers
    resumes every shard from its checkpoint. `on_tick(worker, tick)` runs in the actor after each tick (a
    test's kill switch).

    Raises:
        RuntimeError: an actor died (its finished work is in `checkpoint_folder`).
    """
    import ray
    from ray.exceptions import RayActorError

    project = Path.cwd()

    @ray.remote(num_cpus=threads_per_worker, num_gpus=params.gpus_per_worker)
    class Worker:
        def __init__(self, index: int):
            import os

            import torch

            if not project.is_dir():
                raise RuntimeError(f"mcts.ray_address={params.ray_address!r}: the project folder {project} is not "
                                   "on this node; a cluster needs it on storage shared at the same path")
            os.chdir(project)
            torch.set_num_threads(threads_per_worker)  # actors must not oversubscribe the cores
            self.index = index

        def run(self, shard):
            checkpoint = None
            if checkpoint_folder is not None:
                checkpoint = TreeCheckpoint(checkpoint_folder, fingerprint, name=f"trees.{self.index}.jsonl")
            tick = (lambda t: on_tick(self.index, t)) if on_tick is not None else (lambda t: None)
            return search_shard(policy, shard, iteration, params, backend_params, judge_params, reward,
                                checkpoint, seed_offset=self.index, on_tick=tick,
                                checkpoint_every_s=checkpoint_every_s)

    started_here = not ray.is_initialized()
    if started_here and params.ray_address:
        import schemas
        import stair

        # The cluster's nodes get this checkout's code; their Python environment must have the dependencies.
        ray.init(address=params.ray_address, runtime_env={"py_modules": [stair, schemas]}, log_to_driver=False,
                 configure_logging=False)
    elif started_here:
        ray.init(num_cpus=workers * threads_per_worker, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    shortfall = gpu_shortfall(workers, params.gpus_per_worker, ray.cluster_resources().get("GPU", 0))
    if shortfall:
        log.warning(shortfall)
    actors = []
    try:
        shards = [list(prompts[i::workers]) for i in range(workers)]
        actors = [Worker.remote(i) for i in range(workers)]
        results = ray.get([a.run.remote(s) for a, s in zip(actors, shards) if s])
    except RayActorError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        cause = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # the last line: an error it raised
        raise RuntimeError(f"a search worker died ({cause}); its finished trees are kept in {checkpoint_folder}: "
                           "run the stage again to resume") from None
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
    by_id = {rows[0].prompt_id: rows for shard_trees, _ in results for rows in shard_trees}
    stats = SearchStats()
    for _, s in results:
        stats.trees += s.trees
        stats.nodes += s.nodes
        stats.generate_calls += s.generate_calls
        stats.judge_calls += s.judge_calls
        stats.generated_tokens += s.generated_tokens
        stats.seconds = max(stats.seconds, s.seconds)  # the shards run side by side
    log.info("%d workers built %d trees", workers, len(by_id))
    return [by_id[p.id] for p in prompts], stats
