"""dpo stage: step-level DPO for one self-improvement iteration.

    dvc repro dpo@1       # or: python -m stages.dpo --it 1 --policy models/sft --out models/dpo_1

Trains the iteration's policy on data/pairs/<it> (or on `dpo.pairs`, e.g. hub:<repo>:pairs_{it}) against
the reference (the policy itself by default, or the SFT model); writes the new model,
metrics/dpo/<it>.json, plots/dpo/<it>.json and timings/dpo/<it>.json (wall-clock training time).
With `distributed.processes` > 1 it trains under accelerate launch (stair.launch) and waits for it.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

from schemas import StepPair
from stages.common import ACCELERATE_CONFIGS, load_section, log, stage_main
from stair.config import ParamsError
from stair.hub.pull import load_rows
from stair.launch import DistributedParams, train_in_processes
from stair.store import write_json
from stair.training.dpo import DPOParams, train_step_dpo


@dataclass(frozen=True)
class DPOStageParams(DPOParams):
    # "" = data/pairs/<it>; else hub:<repo>:<config>[@rev], <published folder>:<config> or an artifact folder
    # ('{it}' becomes the iteration)
    pairs: str = ""


def stage_pairs(params: DPOStageParams, it: int) -> tuple[list[StepPair], dict]:
    return load_rows(params.pairs.replace("{it}", str(it)), StepPair, Path(f"data/pairs/{it}"))


@stage_main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--it", type=int, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params, _ = load_section("dpo", DPOStageParams)
    distributed, _ = load_section("distributed", DistributedParams)
    if distributed.launched and params.precompute_ref_log_probs:
        # TRL 1.13 caches them in a temporary folder of its own in each process, which the others cannot read.
        raise ParamsError("dpo.precompute_ref_log_probs does not work with distributed.processes > 1; set it "
                          "false: the reference model is then sharded like the policy")
    pairs, source = stage_pairs(params, args.it)
    reference = args.policy if params.reference == "policy" else Path("models/sft")
    result = train_in_processes("dpo", params, distributed,
                                lambda share: train_step_dpo(args.policy, reference, pairs, args.out, share),
                                ACCELERATE_CONFIGS)
    write_json(Path(f"plots/dpo/{args.it}.json"), result.pop("history"))
    write_json(Path(f"timings/dpo/{args.it}.json"), {"runtime_s": result.pop("runtime_s")})
    write_json(Path(f"metrics/dpo/{args.it}.json"), {**result, **({"pairs_source": source} if source else {})})
    log.info("iteration %d: %s", args.it, result)


if __name__ == "__main__":
    main()
