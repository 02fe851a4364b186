"""prm stage: train the process reward model and check it on held-out trees.

    dvc repro prm         # or: python -m stages.prm

Trains on the train split of data/prm_labels from the final policy's weights; then, on the
validation split (trees of prompts it never saw), measures how often it orders sibling steps like
their MCTS values where they differ by more than the pair margin. Writes models/prm,
metrics/prm.json, plots/prm_loss.json and timings/prm.json (wall-clock training time). With
`distributed.processes` > 1 training runs under accelerate launch (stair.launch); the check runs here after.
"""

from pathlib import Path

from schemas import PRMExample
from stages.common import ACCELERATE_CONFIGS, load_section, log, loop_items, stage_main
from stair.launch import DistributedParams, train_in_processes
from stair.pairs import PairParams
from stair.prm import PRMScorer, sibling_ranking_accuracy
from stair.store import read_artifact, write_json
from stair.training.prm import PRMParams, train_prm

OUT = Path("models/prm")


@stage_main
def main() -> None:
    params, _ = load_section("prm", PRMParams)
    pairs, _ = load_section("pairs", PairParams)
    distributed, _ = load_section("distributed", DistributedParams)
    backbone = Path(list(loop_items().values())[-1]["out"])
    examples = read_artifact(Path("data/prm_labels"), PRMExample)
    train = [e for e in examples if e.split == "train"]
    result = train_in_processes("prm", params, distributed, lambda share: train_prm(backbone, train, OUT, share),
                                ACCELERATE_CONFIGS)
    write_json(Path("plots/prm_loss.json"), result.pop("history"))
    write_json(Path("timings/prm.json"), {"runtime_s": result.pop("runtime_s")})
    scorer = PRMScorer.from_path(OUT)
    accuracy, n_pairs = sibling_ranking_accuracy(scorer, [e for e in examples if e.split == "validation"],
                                                 pairs.margin)
    result.update(validation_sibling_accuracy=round(accuracy, 4), validation_sibling_pairs=n_pairs)
    write_json(Path("metrics/prm.json"), result)
    log.info("PRM: %s", result)


if __name__ == "__main__":
    main()
