"""base stage: the model STAIR starts from.

    dvc repro base        # or: python -m stages.base

`model: tiny` trains a byte-level BPE tokenizer on the SFT set and initialises a small
Llama from config; any other value is a Hugging Face id or local path, loaded with the format tokens
added. Writes models/base (safetensors + tokenizer).
"""

from dataclasses import dataclass, field
from pathlib import Path

from schemas import SFTExample
from stages.common import load_section, log, stage_main
from stair.modeling import (
    TinyModelConfig,
    count_parameters,
    init_tiny_model,
    load_pretrained_base,
    train_tokenizer,
)
from stair.store import read_artifact, write_json
from stair.training.common import save_model

OUT, METRICS = Path("models/base"), Path("metrics/base.json")


@dataclass(frozen=True)
class BaseParams:
    model: str = "tiny"  # 'tiny', or a Hugging Face model id / local path
    revision: str | None = None
    trust_remote_code: bool = False
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@stage_main
def main() -> None:
    params, _ = load_section("base", BaseParams)
    if params.model == "tiny":
        # Only the SFT set: resizing the seed splits then leaves the base (and SFT) model as it is.
        sft = read_artifact(Path("data/sft"), SFTExample)
        tokenizer = train_tokenizer([e.prompt for e in sft] + [e.response for e in sft], params.tiny.vocab_size)
        model = init_tiny_model(tokenizer, params.tiny)
    else:
        model, tokenizer = load_pretrained_base(params.model, params.trust_remote_code, params.revision)
    save_model(model, tokenizer, OUT)
    write_json(METRICS, {"parameters": count_parameters(model), "vocab_size": len(tokenizer)})
    log.info("base model %s: %d parameters, vocabulary %d", params.model, count_parameters(model), len(tokenizer))


if __name__ == "__main__":
    main()
