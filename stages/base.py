"""base stage: the model STAIR starts from.

    dvc repro base        # or, without DVC:
    python -m stages.base --sft data/sft --out models/base --metrics metrics/base.json

`model: tiny` trains a byte-level BPE tokenizer on the SFT set and initialises a small
Llama from config; any other value is a Hugging Face id or local path, loaded with the format tokens
added. Writes the model (safetensors + tokenizer) and its size to the metrics.
"""

from dataclasses import dataclass, field

from schemas import SFTExample
from stages.common import load_section, log, stage_args, stage_main
from stair.errors import ParamsError
from stair.modeling import (
    TinyModelConfig,
    count_parameters,
    init_tiny_model,
    load_pretrained_base,
    train_tokenizer,
)
from stair.store import read_artifact, write_json
from stair.training.common import save_model

ARGS = {"sft": "the SFT set (a tiny model's tokenizer is trained on it)", "out": "the model folder to write",
        "metrics": "the metrics file to write"}


@dataclass(frozen=True)
class BaseParams:
    model: str = "tiny"  # 'tiny', or a Hugging Face model id / local path
    revision: str | None = None
    trust_remote_code: bool = False
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError("base.model is empty: 'tiny', or a Hugging Face model id or local path")


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, _ = load_section("base", BaseParams)
    if params.model == "tiny":
        # Only the SFT set: resizing the seed splits then leaves the base (and SFT) model as it is.
        sft = read_artifact(args.sft, SFTExample)
        tokenizer = train_tokenizer([e.prompt for e in sft] + [e.response for e in sft], params.tiny.vocab_size)
        model = init_tiny_model(tokenizer, params.tiny)
    else:
        try:
            model, tokenizer = load_pretrained_base(params.model, params.trust_remote_code, params.revision)
        except (OSError, ValueError) as err:  # not a folder or a model id it can reach; no usable tokenizer
            raise ParamsError(f"base.model={params.model!r}: could not load it ({type(err).__name__}: {err})") from err
    save_model(model, tokenizer, args.out)
    write_json(args.metrics, {"parameters": count_parameters(model), "vocab_size": len(tokenizer)})
    log.info("base model %s: %d parameters, vocabulary %d", params.model, count_parameters(model), len(tokenizer))


if __name__ == "__main__":
    main()
