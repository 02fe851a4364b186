r"""mcts stage: SI-MCTS trees for one self-improvement iteration (STAIR stage 2).

    dvc repro mcts@1      # or, without DVC:
    python -m stages.mcts --it 1 --policy models/sft --prompts data/prompts \
        --out data/nodes/1 --metrics metrics/mcts/1.json --timings timings/mcts/1.json

Builds one tree per seed prompt of split iter_<it> with the policy model; writes the nodes (TreeNode
rows), the trees' metrics and the search's wall-clock speed (timings). The search is
checkpointed under checkpoints/ (finished trees at once, partial ones every 30 s), so a killed run
resumes where it stopped and writes the same nodes as an uninterrupted one (up to the prompt cache's
rounding, see stair.mcts). With mcts.workers > 1 the prompts are sharded over Ray actors
(mcts.gpus_per_worker GPUs each), on a private local Ray instance or the cluster at mcts.ray_address; each
actor checkpoints its shard the same way.
"""

import time
from pathlib import Path

from tqdm import tqdm

from schemas import SeedPrompt, TreeNode
from stages.common import load_section, log, stage_args, stage_main
from stair.checkpoint import TreeCheckpoint
from stair.generation import BackendParams
from stair.judges import JudgeParams, describe_judge
from stair.mcts import MCTSParams, search_timings, tree_metrics
from stair.reward import RewardParams
from stair.scaleout import placement_free, run_sharded, search_shard
from stair.store import file_md5, params_hash, read_artifact, write_artifact, write_json

ARGS = {"it": (int, "the iteration (its prompts are the split iter_<it>)"), "policy": "the model that searches",
        "prompts": "the prompts", "out": "the nodes to write", "metrics": "the metrics file to write",
        "timings": "the search speed file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("mcts", MCTSParams)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward, raw_reward = load_section("reward", RewardParams)
    stage_params = {"mcts": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward, "it": args.it}

    prompts = [p for p in read_artifact(args.prompts, SeedPrompt) if p.split == f"iter_{args.it}"]
    fingerprint = params_hash({**stage_params, "mcts": placement_free(raw), "policy": file_md5(args.policy),
                               "prompts": file_md5(args.prompts)})
    folder = Path(f"checkpoints/mcts_{args.it}")
    checkpoint = TreeCheckpoint(folder, fingerprint)
    log.info("iteration %d: %d trees with %s, %d worker(s), judged by %s", args.it, len(prompts), args.policy,
             params.workers, describe_judge(judge_params, args.policy))

    start = time.perf_counter()
    engine = (backend_params, judge_params, reward)
    if params.workers > 1:
        log.info("Ray: %s, %g GPU(s) a worker", params.ray_address or "a private local instance", params.gpus_per_worker)
        trees, stats = run_sharded(args.policy, prompts, args.it, params, *engine, folder, fingerprint, params.workers)
    else:
        built = []
        with tqdm(total=len(prompts), desc=f"SI-MCTS iter {args.it}", unit="tree") as bar:
            def progress(rows: list[TreeNode]) -> None:
                built.append(len(rows))
                bar.update(1)
                bar.set_postfix(nodes_per_s=f"{sum(built) / (time.perf_counter() - start):.1f}")

            trees, stats = search_shard(args.policy, prompts, args.it, params, *engine, checkpoint, on_tree=progress)

    rows = [row for tree in trees for row in tree]
    write_artifact(args.out, rows, TreeNode, stage=f"mcts@{args.it}", params=stage_params,
                   inputs=[args.prompts, args.policy])
    write_json(args.metrics, tree_metrics(rows, stats))
    write_json(args.timings, search_timings(stats))
    checkpoint.remove()
    log.info("wrote %d nodes of %d trees", len(rows), len(prompts))


if __name__ == "__main__":
    main()
