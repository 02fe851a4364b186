"""What every trainer here shares: device-safe TrainingArguments, LoRA, and saving a model atomically
(consolidated from every process of a distributed run)."""

import atexit
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stair.errors import ParamsError
from stair.store import atomic_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraParams:
    """LoRA adapters via peft; r = 0 trains every weight (right for the tiny default)."""

    r: int = 0
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainParams:
    """What every training job here sets; each job's params dataclass extends it (and may change defaults)."""

    learning_rate: float = 5e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    epochs: float = 2.0
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 512
    bf16: bool = False
    seed: int = 0
    logging_steps: int = 10
    lora: LoraParams = field(default_factory=LoraParams)


def training_args(params: TrainParams) -> dict:
    """The TrainingArguments every job shares: optimisation from `params`, a scratch output_dir, device safety."""
    from transformers import SchedulerType

    schedulers = [s.value for s in SchedulerType]
    if params.lr_scheduler not in schedulers:  # else TrainingArguments fails with a traceback, after the model loads
        raise ParamsError(f"params.yaml: lr_scheduler={params.lr_scheduler!r} is not one of {', '.join(schedulers)}")
    return dict(
        output_dir=scratch_dir(),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.grad_accum,
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        # transformers 5 dropped warmup_ratio; a float warmup_steps below 1 is read as that share of the steps
        # (TrainingArguments.get_warmup_steps; at exactly 1.0 it would mean one step).
        warmup_steps=params.warmup_ratio,
        weight_decay=params.weight_decay,
        logging_steps=params.logging_steps,
        **device_args(params.seed, params.bf16),
    )


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def device_args(seed: int, bf16: bool) -> dict:
    """TrainingArguments that are fast and deterministic wherever this runs.

    On CPU, TRL's defaults (bf16, gradient checkpointing) are 15-20x slower (STACK gotcha 1), so they
    are switched off; bf16 is used only when asked for and a GPU is present.
    """
    on_gpu = cuda_available()
    return dict(
        use_cpu=not on_gpu,
        bf16=bool(bf16 and on_gpu),
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        logging_strategy="steps",
    )


def peft_config(lora: LoraParams):
    """A peft LoraConfig, or None for full fine-tuning."""
    if lora.r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def save_model(model, tokenizer, out_dir: Path) -> None:
    """save_pretrained (safetensors, LoRA merged in) + tokenizer, atomically into `out_dir`."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def scratch_dir() -> str:
    """A temporary output_dir for a trainer (nothing is checkpointed there; `save_trained` removes it).

    It is also removed when the process exits, so a failed or interrupted run leaves none behind.
    """
    path = tempfile.mkdtemp(prefix="stair-trainer-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def save_trained(trainer, tokenizer, out_dir: Path, state_dict: dict | None = None) -> None:
    """Save the trained model (or `state_dict` in its place) atomically into `out_dir` as one ordinary
    `save_pretrained` folder, and remove the trainer's scratch folder.

    In a run of several processes only the main one writes. Where the weights are sharded (FSDP,
    DeepSpeed ZeRO-3) every process takes part in gathering them whole first, so the folder is the same
    consolidated model a single process would save, and later stages read it unchanged.
    """
    accelerator = trainer.accelerator
    if is_sharded(trainer):
        state_dict = state_dict if state_dict is not None else gathered_state_dict(trainer)
        if accelerator.is_main_process:
            with atomic_dir(Path(out_dir)) as tmp:
                accelerator.unwrap_model(trainer.model).save_pretrained(tmp, state_dict=state_dict,
                                                                        safe_serialization=True)
                tokenizer.save_pretrained(tmp)
    elif accelerator.is_main_process:
        if state_dict is not None:
            trainer.model.load_state_dict(state_dict)
        save_model(trainer.model, tokenizer, out_dir)
    accelerator.wait_for_everyone()  # no process leaves (and no launcher reports success) before the save
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)


def is_sharded(trainer) -> bool:
    """Whether no process holds the whole model (FSDP or DeepSpeed, from the accelerate launch config)."""
    return trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled


def gathered_state_dict(trainer) -> dict:
    """The trained weights, whole, on the main process (a collective where sharded: every process calls it)."""
    if not is_sharded(trainer):
        return {key: value.detach().cpu() for key, value in trainer.model.state_dict().items()}
    return trainer.accelerator.get_state_dict(trainer.deepspeed if trainer.is_deepspeed_enabled else trainer.model)


def loss_history(trainer) -> list[dict]:
    """The trainer's logged losses as rows {step, loss} for a DVC plot."""
    return [
        {"step": entry["step"], "loss": round(entry["loss"], 5)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]


def quiet_hf() -> None:
    """Keep library warnings that don't apply here out of the stage logs."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
