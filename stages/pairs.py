r"""pairs stage: step-level preference pairs from one iteration's trees.

    dvc repro pairs@1     # or, without DVC:
    python -m stages.pairs --it 1 --nodes data/nodes/1 --prompts data/prompts \
        --out data/pairs/1 --metrics metrics/pairs/1.json

Runs the official STAIR selection as SQL over the iteration's nodes; writes the pairs (StepPair rows) and
their counts by kind, depth and terminal, the decision pairs each way (step mode: a refusal preferred over
compliance, or the reverse), plus `best_leaves`: how many good leaves the official best-leaf
SFT selection would pick (a measure of the trees; nothing here trains on them, so they are not written).
"""

from schemas import SeedPrompt, StepPair, TreeNode
from stages.common import load_section, log, stage_args, stage_main
from stair.pairs import (
    PairParams,
    best_leaf_sft,
    decision_counts,
    extract_pairs,
    nodes_connection,
    pair_counts,
    pairs_of_rows,
    step_pair_table,
)
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json

ARGS = {"it": (int, "the iteration"), "nodes": "the iteration's nodes", "prompts": "the prompts",
        "out": "the pairs to write", "metrics": "the metrics file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("pairs", PairParams)
    reward, raw_reward = load_section("reward", RewardParams)
    con = nodes_connection(read_artifact(args.nodes, TreeNode), read_artifact(args.prompts, SeedPrompt))
    decisions = {}
    if params.mode == "step":  # one query gives the pairs and, from their outcome columns, the decision counts
        rows = step_pair_table(con, params, reward).to_pylist()
        pairs, decisions = pairs_of_rows(rows), {"decisions": decision_counts(rows)}
    else:
        pairs = extract_pairs(con, params, reward)
    write_artifact(args.out, pairs, StepPair, stage=f"pairs@{args.it}", params={"pairs": raw, "reward": raw_reward},
                   inputs=[args.nodes, args.prompts])
    counts = {**pair_counts(pairs), "best_leaves": len(best_leaf_sft(con, params, reward)), **decisions}
    write_json(args.metrics, counts)
    log.info("iteration %d: %s", args.it, counts)


if __name__ == "__main__":
    main()
