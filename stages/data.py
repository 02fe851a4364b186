"""data stage: materialize the prompts (every split) and the structured-CoT SFT set.

    dvc repro data        # or: python -m stages.data

Writes data/prompts (SeedPrompt rows) and data/sft (SFTExample rows), each with a manifest, and
metrics/data.json. Held-out prompts whose text is also an SFT or seed prompt's are dropped (counted as
heldout_removed_duplicates); prompt ids must be unique over data.prompts and data.heldout. Local
files (`data.sft`, `data.prompts`, `data.heldout`) must lie under data/inputs/, which dvc.yaml tracks,
so editing one re-runs this stage; a Hub id re-runs it when its revision (a param) changes.
"""

from collections import Counter
from pathlib import Path

from schemas import SeedPrompt, SFTExample
from stages.common import load_section, log, loop_items, stage_main, tracked_input
from stair.data import DataParams, build_dataset
from stair.store import write_artifact, write_json

PROMPTS, SFT, METRICS = Path("data/prompts"), Path("data/sft"), Path("metrics/data.json")


@stage_main
def main() -> None:
    params, raw = load_section("data", DataParams)
    if params.source != "builtin":  # the built-in world reads no file
        for key in ("sft", "prompts", "heldout"):
            tracked_input(getattr(params, key), f"data.{key}")
    iterations = len(loop_items())
    prompts, sft, facts = build_dataset(params, iterations)
    stage_params = {**raw, "iterations": iterations}
    inputs = [Path(p) for p in (params.sft, params.prompts, params.heldout) if p and Path(p).exists()]
    write_artifact(PROMPTS, prompts, SeedPrompt, stage="data", params=stage_params, inputs=inputs,
                   extra=facts["prompts"])
    write_artifact(SFT, sft, SFTExample, stage="data", params=stage_params, inputs=inputs,
                   extra=facts["sft"])
    by_split = Counter(p.split for p in prompts)
    removed = facts["prompts"]["heldout_removed_duplicates"]
    write_json(METRICS, {"prompts": len(prompts), "sft_examples": len(sft), "by_split": dict(sorted(by_split.items())),
                         "heldout_removed_duplicates": removed})
    log.info("wrote %d prompts %s and %d SFT examples; dropped %d held-out prompts that are also SFT or seed prompts",
             len(prompts), dict(by_split), len(sft), removed)


if __name__ == "__main__":
    main()
