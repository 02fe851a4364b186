"""mcts stage: SI-MCTS trees for one self-improvement iteration (STAIR stage 2).

    dvc repro mcts@1      # or: python -m stages.mcts --it 1 --policy models/sft

Builds one tree per seed prompt of split iter_<it> with the policy model; writes data/nodes/<it>
(TreeNode rows) and metrics/mcts/<it>.json. Finished trees are checkpointed under checkpoints/, so a
killed run resumes where it stopped.
"""

import argparse
import logging
from pathlib import Path

from tqdm import tqdm

from schemas import SeedPrompt, TreeNode
from stages.common import load_section, log, stage_main
from stair.checkpoint import TreeCheckpoint
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, make_judge
from stair.mcts import SIMCTS, MCTSParams, make_trees, tree_metrics
from stair.modeling import chat_prompt
from stair.reward import RewardParams
from stair.store import file_md5, params_hash, read_artifact, write_artifact, write_json


@stage_main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--it", type=int, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    args = parser.parse_args()
    params, raw = load_section("mcts", MCTSParams)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward_params, raw_reward = load_section("reward", RewardParams)
    stage_params = {"mcts": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward, "it": args.it}

    prompts_path = Path("data/prompts")
    prompts = [p for p in read_artifact(prompts_path, SeedPrompt) if p.split == f"iter_{args.it}"]
    out, metrics_file = Path(f"data/nodes/{args.it}"), Path(f"metrics/mcts/{args.it}.json")
    fingerprint = params_hash({**stage_params, "policy": file_md5(args.policy), "prompts": file_md5(prompts_path)})
    checkpoint = TreeCheckpoint(Path(f"checkpoints/mcts_{args.it}"), fingerprint)
    finished = checkpoint.load()

    backend = make_backend(args.policy, backend_params, seed=params.seed)
    judge = make_judge(judge_params, reward_params, policy=(backend, backend.tokenizer))
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), args.it, params.seed)
    todo = [t for t in trees if t.tree_id not in finished]
    log.info("iteration %d: %d trees (%d already finished) with %s", args.it, len(trees), len(finished), args.policy)

    search = SIMCTS(backend, judge, params)
    with tqdm(total=len(trees), initial=len(finished), desc=f"SI-MCTS iter {args.it}", unit="tree") as bar:
        def done(tree) -> None:
            rows = tree.rows(args.it)
            checkpoint.save(rows)
            finished[tree.tree_id] = rows
            bar.update(1)
            bar.set_postfix(nodes_per_s=f"{search.stats.nodes / max(bar.format_dict['elapsed'], 1e-9):.1f}")

        search.run(todo, on_done=done)

    rows = [row for tree in trees for row in finished[tree.tree_id]]
    write_artifact(out, rows, TreeNode, stage=f"mcts@{args.it}", params=stage_params,
                   inputs=[prompts_path, args.policy])
    write_json(metrics_file, tree_metrics(rows, search.stats))
    checkpoint.remove()
    log.info("wrote %d nodes of %d trees to %s", len(rows), len(trees), out)


if __name__ == "__main__":
    logging.getLogger("httpx").setLevel(logging.WARNING)
    main()
