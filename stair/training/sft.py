"""Stage 1 of STAIR: structured-CoT format alignment by supervised fine-tuning (TRL SFTTrainer).

Each example is a prompt/completion pair: the chat-rendered request, and the teacher's structured
response. TRL computes the loss on completion tokens only and appends EOS (the end of the turn).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from schemas import SFTExample
from stair.modeling import chat_prompt
from stair.training.common import (
    LoraParams,
    device_args,
    loss_history,
    peft_config,
    quiet_hf,
    save_trained,
    scratch_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTParams:
    """Hyper-parameters of the SFT job (the `sft` section of params.yaml)."""

    epochs: float = 3.0
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 2e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 384
    bf16: bool = False
    seed: int = 0
    logging_steps: int = 10
    lora: LoraParams = field(default_factory=LoraParams)


def sft_records(tokenizer, examples: list[SFTExample]) -> list[dict]:
    """TRL prompt/completion records; the one place SFT examples meet the chat template."""
    return [{"prompt": chat_prompt(tokenizer, e.prompt), "completion": e.response} for e in examples]


def train_sft(base_dir: Path, examples: list[SFTExample], out_dir: Path, params: SFTParams) -> dict:
    """Fine-tune the model in `base_dir` on `examples`; save it to `out_dir`; return training metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    quiet_hf()
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    dataset = Dataset.from_list(sft_records(tokenizer, examples))
    config = SFTConfig(
        output_dir=scratch_dir(),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum,
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,
        weight_decay=params.weight_decay,
        max_length=params.max_length,
        completion_only_loss=True,
        logging_steps=params.logging_steps,
        **device_args(params.seed, params.bf16),
    )
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
