"""prm_labels stage: process-reward labels from the SI-MCTS trees of every iteration.

    dvc repro prm_labels  # or: python -m stages.prm_labels

Every node visited often enough (or terminal) becomes a PRMExample: its path, its value scaled to
[0, 1] by the reward's range (soft label) and thresholded (hard label); so does every completed
rollout (the node's path and the rollout's steps, labelled by the judged reward). A share of prompts
is held out as the validation split. Writes data/prm_labels and metrics/prm_labels.json.
"""

from collections import Counter
from pathlib import Path

from schemas import PRMExample, SeedPrompt, TreeNode
from stages.common import load_section, log, loop_items, stage_main
from stair.pairs import visits_share
from stair.prm import LabelParams, prm_examples
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json


@stage_main
def main() -> None:
    params, raw = load_section("prm_labels", LabelParams)
    reward, raw_reward = load_section("reward", RewardParams)
    node_paths = [Path(f"data/nodes/{k}") for k in loop_items()]
    nodes = [n for path in node_paths for n in read_artifact(path, TreeNode)]
    prompts_path = Path("data/prompts")
    examples = prm_examples(nodes, read_artifact(prompts_path, SeedPrompt), params, reward)
    write_artifact(Path("data/prm_labels"), examples, PRMExample, stage="prm_labels",
                   params={"prm_labels": raw, "reward": raw_reward}, inputs=[*node_paths, prompts_path])
    counts = {"examples": len(examples), "by_source": dict(Counter(e.source for e in examples)),
              "by_split": dict(Counter(e.split for e in examples)),
              "by_kind": dict(Counter(e.kind for e in examples)),
              "hard_positive_share": round(sum(e.hard_label for e in examples) / max(len(examples), 1), 4),
              "node_share_min_visits_2": visits_share([e.visits for e in examples if e.source == "node"])}
    write_json(Path("metrics/prm_labels.json"), counts)
    log.info("PRM labels: %s", counts)


if __name__ == "__main__":
    main()
