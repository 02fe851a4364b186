"""dpo stage: step-level DPO for one self-improvement iteration.

    dvc repro dpo@1       # or: python -m stages.dpo --it 1 --policy models/sft --out models/dpo_1

Trains the iteration's policy on data/pairs/<it> against the reference (the policy itself by
default, or the SFT model); writes the new model, metrics/dpo/<it>.json and plots/dpo/<it>.json.
"""

import argparse
from pathlib import Path

from schemas import StepPair
from stages.common import load_section, log, stage_main
from stair.store import read_artifact, write_json
from stair.training.dpo import DPOParams, train_step_dpo


@stage_main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--it", type=int, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params, _ = load_section("dpo", DPOParams)
    pairs = read_artifact(Path(f"data/pairs/{args.it}"), StepPair)
    reference = args.policy if params.reference == "policy" else Path("models/sft")
    result = train_step_dpo(args.policy, reference, pairs, args.out, params)
    write_json(Path(f"plots/dpo/{args.it}.json"), result.pop("history"))
    write_json(Path(f"metrics/dpo/{args.it}.json"), result)
    log.info("iteration %d: %s", args.it, result)


if __name__ == "__main__":
    main()
