r"""prm stage: train the process reward model and check it on held-out trees.

    dvc repro prm         # or, without DVC:
    python -m stages.prm --labels data/prm_labels --configs configs/accelerate \
        --out models/prm --metrics metrics/prm.json --plot plots/prm_loss.json \
        --timings timings/prm.json

Trains on the train split of the labels from the final policy's weights (the loop's last model); then,
on the validation split (trees of prompts it never saw), measures how often it orders sibling steps like
their MCTS values where they differ by more than the pair margin. Writes the model, its metrics, the loss
curve (plot) and the wall-clock training time (timings). With `distributed.processes` > 1 training runs
under accelerate launch (stair.launch) with --configs/<strategy>.yaml; the check runs here after.
"""

from schemas import PRMExample
from stages.common import load_section, log, loop_models, stage_args, stage_main
from stair.launch import DistributedParams, train_in_processes
from stair.pairs import PairParams
from stair.prm import PRMScorer, sibling_ranking_accuracy
from stair.store import read_artifact, write_json
from stair.training.prm import PRMParams, train_prm

ARGS = {"labels": "the PRM labels", "configs": "the accelerate launch configs", "out": "the model folder to write",
        "metrics": "the metrics file to write", "plot": "the loss curve to write",
        "timings": "the training time file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, _ = load_section("prm", PRMParams)
    pairs, _ = load_section("pairs", PairParams)
    distributed, _ = load_section("distributed", DistributedParams)
    backbone = list(loop_models().values())[-1]
    examples = read_artifact(args.labels, PRMExample)
    train = [e for e in examples if e.split == "train"]
    result = train_in_processes("prm", params, distributed, lambda share: train_prm(backbone, train, args.out, share),
                                args.configs)
    write_json(args.plot, result.pop("history"))
    write_json(args.timings, {"runtime_s": result.pop("runtime_s")})
    scorer = PRMScorer.from_path(args.out)
    accuracy, n_pairs = sibling_ranking_accuracy(scorer, [e for e in examples if e.split == "validation"],
                                                 pairs.margin)
    result.update(validation_sibling_accuracy=round(accuracy, 4), validation_sibling_pairs=n_pairs)
    write_json(args.metrics, result)
    log.info("PRM: %s", result)


if __name__ == "__main__":
    main()
