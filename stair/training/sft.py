"""Stage 1 of STAIR: structured-CoT format alignment by supervised fine-tuning (TRL SFTTrainer).

Each example is a prompt/completion pair: the chat-rendered request, and the teacher's structured
response. TRL computes the loss on completion tokens only and appends EOS (the end of the turn).
"""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from schemas import SFTExample
from stair.launch import is_main_worker
from stair.modeling import chat_prompt
from stair.store import atomic_dir
from stair.training.common import (
    TrainParams,
    loss_history,
    peft_config,
    quiet_hf,
    save_trained,
    training_args,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTParams(TrainParams):
    """Hyper-parameters of the SFT job (the `sft` section of params.yaml)."""

    epochs: float = 4.0
    learning_rate: float = 2e-3
    max_length: int = 384
    skip: bool = False  # the base is already format-aligned (a published STAIR SFT checkpoint): keep it as is


def sft_records(tokenizer, examples: list[SFTExample]) -> list[dict]:
    """TRL prompt/completion records; the one place SFT examples meet the chat template."""
    return [{"prompt": chat_prompt(tokenizer, e.prompt), "completion": e.response} for e in examples]


def train_sft(base_dir: Path, examples: list[SFTExample], out_dir: Path, params: SFTParams) -> dict:
    """Fine-tune the model in `base_dir` on `examples`; save it to `out_dir`; return training metrics.

    With `params.skip` the base is copied unchanged (steps 0): it already answers in the format.
    """
    if params.skip:
        log.info("sft.skip: %s is already format-aligned; copying it unchanged", base_dir)
        if is_main_worker():  # one writer where several processes were launched
            with atomic_dir(Path(out_dir)) as tmp:
                shutil.copytree(base_dir, tmp, dirs_exist_ok=True)
        return {"train_loss": None, "steps": 0, "runtime_s": 0.0, "examples": 0, "history": []}
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    quiet_hf()
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    dataset = Dataset.from_list(sft_records(tokenizer, examples))
    config = SFTConfig(max_length=params.max_length, completion_only_loss=True, **training_args(params))
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(params.lora),
    )
    log.info("SFT on %d examples for %s epochs", len(dataset), params.epochs)
    result = trainer.train()
    save_trained(trainer, tokenizer, out_dir)
    return {
        "train_loss": round(result.training_loss, 5),
        "steps": result.global_step,
        "runtime_s": round(result.metrics["train_runtime"], 1),
        "examples": len(dataset),
        "history": loss_history(trainer),
    }
