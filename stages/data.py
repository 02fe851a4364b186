r"""data stage: materialize the prompts (every split) and the structured-CoT SFT set.

    dvc repro data        # or, without DVC:
    python -m stages.data --inputs data/inputs --prompts data/prompts \
        --sft data/sft --metrics metrics/data.json

Writes the prompts (SeedPrompt rows) and the SFT set (SFTExample rows), each with a manifest, and the
metrics. Held-out prompts whose text is also an SFT or seed prompt's are dropped (counted as
heldout_removed_duplicates); prompt ids must be unique over data.prompts and data.heldout. Local
files (`data.sft`, `data.prompts`, `data.heldout`) must lie under --inputs, which dvc.yaml tracks,
so editing one re-runs this stage; a Hub id re-runs it when its revision (a param) changes.
"""

from collections import Counter
from pathlib import Path

from schemas import SeedPrompt, SFTExample
from stages.common import load_section, log, loop_items, stage_args, stage_main, tracked_input
from stair.data import DataParams, build_dataset
from stair.store import write_artifact, write_json

ARGS = {"inputs": "the folder local data files must lie in (tracked by DVC)", "prompts": "the prompts to write",
        "sft": "the SFT set to write", "metrics": "the metrics file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("data", DataParams)
    if params.source != "builtin":  # the built-in world reads no file
        for key in ("sft", "prompts", "heldout"):
            tracked_input(getattr(params, key), f"data.{key}", args.inputs)
    iterations = len(loop_items())
    prompts, sft, facts = build_dataset(params, iterations)
    stage_params = {**raw, "iterations": iterations}
    inputs = [Path(p) for p in (params.sft, params.prompts, params.heldout) if p and Path(p).exists()]
    write_artifact(args.prompts, prompts, SeedPrompt, stage="data", params=stage_params, inputs=inputs,
                   extra=facts["prompts"])
    write_artifact(args.sft, sft, SFTExample, stage="data", params=stage_params, inputs=inputs,
                   extra=facts["sft"])
    by_split = Counter(p.split for p in prompts)
    removed = facts["prompts"]["heldout_removed_duplicates"]
    write_json(args.metrics, {"prompts": len(prompts), "sft_examples": len(sft), "by_split": dict(sorted(by_split.items())),
                         "heldout_removed_duplicates": removed})
    log.info("wrote %d prompts %s and %d SFT examples; dropped %d held-out prompts that are also SFT or seed prompts",
             len(prompts), dict(by_split), len(sft), removed)


if __name__ == "__main__":
    main()
