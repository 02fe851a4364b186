"""sft stage: structured-CoT format alignment (STAIR stage 1) with TRL's SFTTrainer.

    dvc repro sft         # or: python -m stages.sft

Reads data/sft and models/base; writes models/sft, metrics/sft.json, plots/sft_loss.json and
timings/sft.json (wall-clock training time, kept out of the metrics). With `distributed.processes` > 1
it trains under accelerate launch (stair.launch) and waits for it.
"""

from pathlib import Path

from schemas import SFTExample
from stages.common import ACCELERATE_CONFIGS, load_section, log, stage_main
from stair.launch import DistributedParams, train_in_processes
from stair.store import read_artifact, write_json
from stair.training.sft import SFTParams, train_sft

OUT, METRICS, PLOT, TIMINGS = (Path("models/sft"), Path("metrics/sft.json"), Path("plots/sft_loss.json"),
                               Path("timings/sft.json"))


@stage_main
def main() -> None:
    params, _ = load_section("sft", SFTParams)
    distributed, _ = load_section("distributed", DistributedParams)
    examples = read_artifact(Path("data/sft"), SFTExample)
    result = train_in_processes("sft", params, distributed,
                                lambda share: train_sft(Path("models/base"), examples, OUT, share), ACCELERATE_CONFIGS)
    history = result.pop("history")
    write_json(TIMINGS, {"runtime_s": result.pop("runtime_s")})
    write_json(METRICS, result)
    write_json(PLOT, history)
    log.info("SFT done: %s", result)


if __name__ == "__main__":
    main()
