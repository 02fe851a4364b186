r"""dpo stage: step-level DPO for one self-improvement iteration.

    dvc repro dpo@1       # or, without DVC:
    python -m stages.dpo --it 1 --policy models/sft --pairs data/pairs/1 \
        --sft models/sft --configs configs/accelerate --out models/dpo/1 \
        --metrics metrics/dpo/1.json --plot plots/dpo/1.json --timings timings/dpo/1.json

Trains the iteration's policy on its pairs (or on `dpo.pairs`, e.g. hub:<repo>:pairs_{it}) against the
reference (the policy itself by default, or the SFT model); writes the new model, its metrics, the loss
curve (plot) and the wall-clock training time (timings). With `distributed.processes` > 1 it trains under
accelerate launch (stair.launch) with --configs/<strategy>.yaml and waits for it.
"""

from dataclasses import dataclass
from pathlib import Path

from schemas import StepPair
from stages.common import load_section, log, stage_args, stage_main
from stair.config import ParamsError
from stair.hub.pull import load_rows
from stair.launch import DistributedParams, train_in_processes
from stair.store import write_json
from stair.training.dpo import DPOParams, train_step_dpo

ARGS = {"it": (int, "the iteration"), "policy": "the model to train", "pairs": "the pairs (unless dpo.pairs is set)",
        "sft": "the SFT model (the reference with dpo.reference: sft)", "configs": "the accelerate launch configs",
        "out": "the model folder to write", "metrics": "the metrics file to write", "plot": "the loss curve to write",
        "timings": "the training time file to write"}


@dataclass(frozen=True)
class DPOStageParams(DPOParams):
    # "" = the stage's --pairs; else hub:<repo>:<config>[@rev], <published folder>:<config> or an artifact folder
    # ('{it}' becomes the iteration)
    pairs: str = ""


def stage_pairs(params: DPOStageParams, it: int, default: Path) -> tuple[list[StepPair], dict]:
    return load_rows(params.pairs.replace("{it}", str(it)), StepPair, default)


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, _ = load_section("dpo", DPOStageParams)
    distributed, _ = load_section("distributed", DistributedParams)
    if distributed.launched and params.precompute_ref_log_probs:
        # TRL 1.13 caches them in a temporary folder of its own in each process, which the others cannot read.
        raise ParamsError("dpo.precompute_ref_log_probs does not work with distributed.processes > 1; set it "
                          "false: the reference model is then sharded like the policy")
    pairs, source = stage_pairs(params, args.it, args.pairs)
    reference = args.policy if params.reference == "policy" else args.sft
    result = train_in_processes("dpo", params, distributed,
                                lambda share: train_step_dpo(args.policy, reference, pairs, args.out, share),
                                args.configs)
    write_json(args.plot, result.pop("history"))
    write_json(args.timings, {"runtime_s": result.pop("runtime_s")})
    write_json(args.metrics, {**result, **({"pairs_source": source} if source else {})})
    log.info("iteration %d: %s", args.it, result)


if __name__ == "__main__":
    main()
