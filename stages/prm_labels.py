r"""prm_labels stage: process-reward labels from the SI-MCTS trees of every iteration.

    dvc repro prm_labels  # or, without DVC:
    python -m stages.prm_labels --nodes data/nodes --prompts data/prompts \
        --out data/prm_labels --metrics metrics/prm_labels.json

Every node visited often enough (or terminal) becomes a PRMExample: its path, its value scaled to
[0, 1] by the reward's range (soft label) and thresholded (hard label); so does every completed
rollout (the node's path and the rollout's steps, labelled by the judged reward). A share of prompts
is held out as the validation split. Reads every iteration's nodes (--nodes/<k>); writes the labels and
their metrics.
"""

from collections import Counter

from schemas import PRMExample, SeedPrompt, TreeNode
from stages.common import load_section, log, loop_items, stage_args, stage_main
from stair.pairs import visits_share
from stair.prm import LabelParams, prm_examples
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json

ARGS = {"nodes": "the folder of every iteration's nodes (<nodes>/<k>)", "prompts": "the prompts",
        "out": "the labels to write", "metrics": "the metrics file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("prm_labels", LabelParams)
    reward, raw_reward = load_section("reward", RewardParams)
    node_paths = [args.nodes / k for k in loop_items()]
    nodes = [n for path in node_paths for n in read_artifact(path, TreeNode)]
    examples = prm_examples(nodes, read_artifact(args.prompts, SeedPrompt), params, reward)
    write_artifact(args.out, examples, PRMExample, stage="prm_labels",
                   params={"prm_labels": raw, "reward": raw_reward}, inputs=[*node_paths, args.prompts])
    counts = {"examples": len(examples), "by_source": dict(Counter(e.source for e in examples)),
              "by_split": dict(Counter(e.split for e in examples)),
              "by_kind": dict(Counter(e.kind for e in examples)),
              "hard_positive_share": round(sum(e.hard_label for e in examples) / max(len(examples), 1), 4),
              "node_share_min_visits_2": visits_share([e.visits for e in examples if e.source == "node"])}
    write_json(args.metrics, counts)
    log.info("PRM labels: %s", counts)


if __name__ == "__main__":
    main()
