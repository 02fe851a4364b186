"""pairs stage: step-level preference pairs (and best-leaf SFT picks) from one iteration's trees.

    dvc repro pairs@1     # or: python -m stages.pairs --it 1

Runs the official STAIR selection as SQL over data/nodes/<it>; writes data/pairs/<it> (StepPair rows),
data/best_leaves/<it> (SFTExample rows) and metrics/pairs/<it>.json (counts by kind, depth, terminal).
"""

import argparse
from pathlib import Path

from schemas import SeedPrompt, SFTExample, StepPair, TreeNode
from stages.common import load_section, log, stage_main
from stair.pairs import PairParams, best_leaf_sft, extract_pairs, nodes_connection, pair_counts
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json


@stage_main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--it", type=int, required=True)
    args = parser.parse_args()
    params, raw = load_section("pairs", PairParams)
    reward, raw_reward = load_section("reward", RewardParams)
    nodes_path, prompts_path = Path(f"data/nodes/{args.it}"), Path("data/prompts")
    con = nodes_connection(read_artifact(nodes_path, TreeNode), read_artifact(prompts_path, SeedPrompt))
    pairs = extract_pairs(con, params, reward)
    leaves = best_leaf_sft(con, params, reward)
    stage_params = {"pairs": raw, "reward": raw_reward}
    inputs = [nodes_path, prompts_path]
    write_artifact(Path(f"data/pairs/{args.it}"), pairs, StepPair, stage=f"pairs@{args.it}", params=stage_params,
                   inputs=inputs)
    write_artifact(Path(f"data/best_leaves/{args.it}"), leaves, SFTExample, stage=f"pairs@{args.it}",
                   params=stage_params, inputs=inputs)
    counts = {**pair_counts(pairs), "best_leaves": len(leaves)}
    write_json(Path(f"metrics/pairs/{args.it}.json"), counts)
    log.info("iteration %d: %s", args.it, counts)


if __name__ == "__main__":
    main()
