r"""sft stage: structured-CoT format alignment (STAIR stage 1) with TRL's SFTTrainer.

    dvc repro sft         # or, without DVC:
    python -m stages.sft --base models/base --sft data/sft --configs configs/accelerate \
        --out models/sft --metrics metrics/sft.json --plot plots/sft_loss.json \
        --timings timings/sft.json

Fine-tunes the base model on the SFT set; writes the model, its metrics, the loss curve (plot) and the
wall-clock training time (timings, kept out of the metrics). With `distributed.processes` > 1 it trains
under accelerate launch (stair.launch) with --configs/<strategy>.yaml and waits for it.
"""

from schemas import SFTExample
from stages.common import load_section, log, stage_args, stage_main
from stair.launch import DistributedParams, train_in_processes
from stair.store import read_artifact, write_json
from stair.training.sft import SFTParams, train_sft

ARGS = {"base": "the model to fine-tune", "sft": "the SFT set", "configs": "the accelerate launch configs",
        "out": "the model folder to write", "metrics": "the metrics file to write",
        "plot": "the loss curve to write", "timings": "the training time file to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, _ = load_section("sft", SFTParams)
    distributed, _ = load_section("distributed", DistributedParams)
    examples = read_artifact(args.sft, SFTExample)
    result = train_in_processes("sft", params, distributed,
                                lambda share: train_sft(args.base, examples, args.out, share), args.configs)
    history = result.pop("history")
    write_json(args.timings, {"runtime_s": result.pop("runtime_s")})
    write_json(args.metrics, result)
    write_json(args.plot, history)
    log.info("SFT done: %s", result)


if __name__ == "__main__":
    main()
