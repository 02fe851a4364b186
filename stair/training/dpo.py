"""Step-level DPO (STAIR stage 2) on sibling-step preference pairs, with TRL's DPOTrainer.

The prompt is the chat-rendered request plus the shared prefix steps; chosen and rejected are only
the next step. TRL appends EOS to every completion, which would teach the model to stop after one
step (STACK gotcha 3), so `StepDPOTrainer` tokenizes the pairs itself: EOS ends a completion only
when the step closes the final output.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from schemas import StepPair
from stair.format import OUTPUT_CLOSE
from stair.launch import is_main_worker
from stair.modeling import chat_prompt
from stair.training.common import (
    TrainParams,
    loss_history,
    peft_config,
    quiet_hf,
    save_model,
    save_trained,
    training_args,
)

log = logging.getLogger(__name__)


# The losses TRL's DPOTrainer computes (trl 1.13, DPOConfig.loss_type); it names an unknown one only at the first
# training step, after the models have loaded.
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


@dataclass(frozen=True)
class DPOParams(TrainParams):
    """Hyper-parameters of one step-level DPO iteration (the `dpo` section of params.yaml)."""

    learning_rate: float = 1e-5
    logging_steps: int = 5
    beta: float = 0.1
    loss_type: str = "sigmoid"
    # + this x the chosen step's token-mean NLL (RPO, Pang et al. 2024). At learning rates that move the model,
    # plain DPO on the policy's own pairs pushes chosen steps down with rejected ones until answers lose their
    # format; this term keeps them likely. 0 = plain DPO.
    sft_weight: float = 0.0
    reference: str = "policy"  # policy: the iteration's starting model; sft: always the SFT model
    precompute_ref_log_probs: bool = False

    def __post_init__(self) -> None:
        if self.reference not in ("policy", "sft"):
            raise ValueError(f"dpo.reference={self.reference!r} is not 'policy' or 'sft'")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"dpo.loss_type={self.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        if not self.beta > 0:  # also rejects nan
            raise ValueError(f"dpo.beta={self.beta} must be > 0")
        if not self.sft_weight >= 0:
            raise ValueError(f"dpo.sft_weight={self.sft_weight} must be >= 0")


def dpo_records(tokenizer, pairs: list[StepPair]) -> list[dict]:
    """Prompt (chat-rendered request + prefix steps), the two next steps, and whether each is final."""
    return [
        {
            "prompt": chat_prompt(tokenizer, p.prompt) + "".join(p.prefix),
            "chosen": p.chosen,
            "rejected": p.rejected,
            "chosen_final": OUTPUT_CLOSE in p.chosen,
            "rejected_final": OUTPUT_CLOSE in p.rejected,
        }
        for p in pairs
    ]


def tokenize_step_pair(record: dict, tokenizer) -> dict:
    """prompt_ids / chosen_ids / rejected_ids, with EOS only after a step that closes the output."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt_ids = ids(record["prompt"])
    out = {"prompt_ids": prompt_ids}
    for side in ("chosen", "rejected"):
        completion = ids(record["prompt"] + record[side])[len(prompt_ids) :]
        if record[f"{side}_final"]:
            completion = completion + [tokenizer.eos_token_id]
        out[f"{side}_ids"] = completion
    return out


def step_dpo_trainer():
    from trl import DPOTrainer

    class StepDPOTrainer(DPOTrainer):
        """DPOTrainer whose dataset preparation is `tokenize_step_pair` (no blanket EOS)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:
                return dataset
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            dataset = dataset.map(tokenize_step_pair, fn_kwargs={"tokenizer": tokenizer},
                                  remove_columns=dataset.column_names, desc=f"Tokenizing {dataset_name} step pairs")
            if args.max_length is not None:
                dataset = dataset.filter(lambda example: len(example["prompt_ids"]) < args.max_length)
            return dataset

    return StepDPOTrainer


def explicit_reference(policy_dir: Path, reference_dir: Path, params: DPOParams) -> Path | None:
    """The model to load as TRL's `ref_model`, or None where TRL's own reference is already the right one.

    Without a `ref_model`, TRL 1.13 takes the policy before training as the reference where it can keep
    it cheaply: with LoRA it disables the adapter (the policy, since every model here is saved merged),
    and with `precompute_ref_log_probs` it runs the untrained policy once. Both are right only when the
    reference *is* the policy; any other reference (`dpo.reference: sft` after the first iteration) is
    loaded and passed, which TRL uses in both setups (the adapter-free policy is then never consulted).
    Full training without precompute always gets an explicit one, so TRL never reloads the policy by
    name (STACK gotcha 2).
    """
    same = Path(reference_dir).resolve() == Path(policy_dir).resolve()
    if same and (params.lora.r > 0 or params.precompute_ref_log_probs):
        return None
    return Path(reference_dir)


def build_step_dpo_trainer(model, ref_model, tokenizer, pairs: list[StepPair], params: DPOParams):
    """A `StepDPOTrainer` on `pairs`; `ref_model` None lets TRL derive the reference from `model`."""
    from datasets import Dataset
    from trl import DPOConfig

    losses, weights = [params.loss_type], [1.0]
    if params.sft_weight > 0:
        losses, weights = [*losses, "sft"], [*weights, params.sft_weight]
    config = DPOConfig(beta=params.beta, loss_type=losses, loss_weights=weights, max_length=params.max_length,
                       precompute_ref_log_probs=params.precompute_ref_log_probs, **training_args(params))
    return step_dpo_trainer()(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=Dataset.from_list(dpo_records(tokenizer, pairs)),
        processing_class=tokenizer,
        peft_config=peft_config(params.lora),
    )


def train_step_dpo(policy_dir: Path, reference_dir: Path, pairs: list[StepPair], out_dir: Path,
                   params: DPOParams) -> dict:
    """Train the policy in `policy_dir` on `pairs` against the reference; save to `out_dir`; return metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_hf()
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    if not pairs:
        # Defined handling: trees with no clear preference leave the policy as it was.
        log.warning("no preference pairs: the trees gave none, so %s is saved unchanged", policy_dir)
        if is_main_worker():  # one writer where several processes were launched
            save_model(model, tokenizer, out_dir)
        return {"train_loss": 0.0, "steps": 0, "runtime_s": 0.0, "pairs": 0, "reward_accuracy": 0.0,
                "reward_margin": 0.0, "chosen_reward": 0.0, "history": []}
    ref_dir = explicit_reference(policy_dir, reference_dir, params)
    ref_model = None if ref_dir is None else AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32)
    if ref_dir is not None and (params.lora.r > 0 or params.precompute_ref_log_probs):
        log.info("reference %s is not the policy, so it is loaded in full beside it", ref_dir)
    trainer = build_step_dpo_trainer(model, ref_model, tokenizer, pairs, params)
    log.info("step-level DPO on %d pairs for %s epochs (reference %s)", len(pairs), params.epochs, reference_dir)
    result = trainer.train()
    save_trained(trainer, tokenizer, out_dir)
    last = next((e for e in reversed(trainer.state.log_history) if "rewards/accuracies" in e), {})
    return {
        "train_loss": round(result.training_loss, 5),
        "steps": result.global_step,
        "runtime_s": round(result.metrics["train_runtime"], 1),
        "pairs": len(pairs),
        "reward_accuracy": round(float(last.get("rewards/accuracies", 0.0)), 4),
        "reward_margin": round(float(last.get("rewards/margins", 0.0)), 4),
        # Below zero: the chosen steps lost likelihood too (what sft_weight guards against).
        "chosen_reward": round(float(last.get("rewards/chosen", 0.0)), 4),
        "history": loss_history(trainer),
    }
