"""SI-MCTS for the mcts stage: one engine (`search_shard`), or prompts sharded across Ray actors with one
backend and judge each (`run_sharded`).

Each actor runs the same lock-step `SIMCTS` on its shard and checkpoints finished trees to its own
file in the shared checkpoint folder, so a killed run resumes per tree exactly as a single engine
does. Results come back as rows and are merged in the caller's prompt order. Ray is an optional extra
(`pip install -e ".[ray]"`) and is imported only here.
"""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from schemas import SeedPrompt, TreeNode
from stair.checkpoint import TreeCheckpoint
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, make_judge
from stair.mcts import SIMCTS, MCTSParams, SearchStats, make_trees
from stair.modeling import chat_prompt
from stair.reward import RewardParams

log = logging.getLogger(__name__)


def search_shard(policy: Path, prompts: Sequence[SeedPrompt], iteration: int, params: MCTSParams,
                 backend_params: BackendParams, judge_params: JudgeParams, reward: RewardParams,
                 checkpoint: TreeCheckpoint | None, seed_offset: int = 0,
                 on_tree: Callable[[list[TreeNode]], None] = lambda rows: None,
                 ) -> tuple[list[list[TreeNode]], SearchStats]:
    """Build the trees of `prompts` with one engine; returns each tree's rows (in prompt order) and stats.

    Every finished tree is checkpointed (if a checkpoint is given) and passed to `on_tree`.
    """
    backend = make_backend(policy, backend_params, seed=params.seed + seed_offset)
    judge = make_judge(judge_params, reward, policy=(backend, backend.tokenizer))
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), iteration, params.seed)
    done: dict[str, list[TreeNode]] = {}

    def finish(tree) -> None:
        rows = tree.rows(iteration)
        if checkpoint is not None:
            checkpoint.save(rows)
        done[tree.tree_id] = rows
        on_tree(rows)

    search = SIMCTS(backend, judge, params)
    search.run(trees, on_done=finish)
    return [done[t.tree_id] for t in trees], search.stats


def run_sharded(policy: Path, prompts: Sequence[SeedPrompt], iteration: int, params: MCTSParams,
                backend_params: BackendParams, judge_params: JudgeParams, reward: RewardParams,
                checkpoint_folder: Path | None, fingerprint: str, workers: int,
                threads_per_worker: int = 1) -> tuple[list[list[TreeNode]], SearchStats]:
    """Shard `prompts` round-robin over `workers` Ray actors; merge their trees in prompt order."""
    import ray

    @ray.remote(num_cpus=threads_per_worker)
    class Worker:
        def __init__(self, index: int):
            import torch

            torch.set_num_threads(threads_per_worker)  # actors must not oversubscribe the cores
            self.index = index

        def run(self, shard):
            checkpoint = None
            if checkpoint_folder is not None:
                checkpoint = TreeCheckpoint(checkpoint_folder, fingerprint, name=f"trees.{self.index}.jsonl")
            return search_shard(policy, shard, iteration, params, backend_params, judge_params, reward,
                                checkpoint, seed_offset=self.index)

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=workers * threads_per_worker, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        shards = [list(prompts[i::workers]) for i in range(workers)]
        actors = [Worker.remote(i) for i in range(workers)]
        results = ray.get([a.run.remote(s) for a, s in zip(actors, shards) if s])
    finally:
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
