"""Process reward model training on MCTS step values, with plain `transformers.Trainer`.

A one-logit token-classification head on a causal-LM backbone (by default the final policy). Each
training sequence is a maximal path of a tree (prompt + steps); it carries a label at the closing
token of every labelled step on it, so a path's prefixes share one forward pass. Losses:
`soft` (BCE on the value scaled to [0, 1], the default), `hard` (BCE on the thresholded label), and
`pairwise` (Bradley-Terry on sibling steps whose labels differ by more than `pair_margin`).
TRL's PRMTrainer is not used: it casts labels to int (soft labels become 0) and was removed in 1.14.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from schemas import PRMExample
from stair.modeling import chat_prompt
from stair.prm import close_token_ids, step_end_positions
from stair.training.common import (
    LoraParams,
    TrainParams,
    loss_history,
    peft_config,
    quiet_hf,
    save_trained,
    training_args,
)

log = logging.getLogger(__name__)
LOSSES = ("soft", "hard", "pairwise")
IGNORE = -100.0


@dataclass(frozen=True)
class PRMParams(TrainParams):
    """Hyper-parameters of PRM training (the `prm` section of params.yaml)."""

    learning_rate: float = 5e-4
    loss: str = "soft"
    pair_margin: float = 0.1  # pairwise: scaled-label gap between siblings to form a pair

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"prm.loss={self.loss!r} is not one of {LOSSES}")


def path_sequences(examples: list[PRMExample], hard: bool = False) -> list[dict]:
    """Group examples into maximal paths: {prompt, steps, labels (one per step, None if unlabelled)}."""
    by_tree: dict[tuple, dict[tuple[str, ...], float]] = defaultdict(dict)
    prompts = {}
    for e in examples:
        key = (e.prompt_id, e.iteration)
        by_tree[key][tuple(e.steps)] = float(e.hard_label) if hard else e.label
        prompts[key] = e.prompt
    sequences = []
    for key, labels in by_tree.items():
        paths = set(labels)
        prefixes = {p[:k] for p in paths for k in range(1, len(p))}
        for path in sorted(paths - prefixes):  # maximal: not a prefix of another labelled path
            sequences.append({"prompt": prompts[key], "steps": list(path),
                              "labels": [labels.get(path[:k]) for k in range(1, len(path) + 1)]})
    return sequences


def sibling_pairs(examples: list[PRMExample], margin: float) -> list[dict]:
    """Sibling steps (same prompt, iteration and prefix) whose labels differ by more than `margin`."""
    groups: dict[tuple, list[PRMExample]] = defaultdict(list)
    for e in examples:
        groups[(e.prompt_id, e.iteration, tuple(e.steps[:-1]))].append(e)
    pairs = []
    for siblings in groups.values():
        for a in siblings:
            for b in siblings:
                if a.label - b.label > margin:
                    pairs.append({"prompt": a.prompt, "chosen": a.steps, "rejected": b.steps})
    return pairs


def encode(tokenizer, prompt: str, steps: list[str], labels: list[float | None], max_length: int) -> dict:
    """input_ids with a label at each labelled step's closing token and IGNORE elsewhere."""
    ids = tokenizer(chat_prompt(tokenizer, prompt) + "".join(steps), add_special_tokens=False)["input_ids"]
    ids = ids[:max_length]
    targets = [IGNORE] * len(ids)
    ends = step_end_positions(ids, close_token_ids(tokenizer))
    for position, label in zip(ends, labels):
        if label is not None:
            targets[position] = label
    return {"input_ids": ids, "labels": targets}


def _collate(pad_id: int):
    import torch

    def collate(rows: list[dict]) -> dict:
        if "chosen" in rows[0]:  # pairwise: chosen and rejected of a pair side by side
            rows = [side for r in rows for side in (r["chosen"], r["rejected"])]
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(r["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def _trainer_class(pairwise: bool):
    import torch
    from transformers import Trainer

    class PRMTrainer(Trainer):
        """BCE on labelled positions; pairwise rows (chosen, rejected interleaved) use Bradley-Terry."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            logits = model(**inputs).logits[..., 0]
            mask = labels != IGNORE
            if pairwise:
                # Each row has one labelled position (its last step); rows alternate chosen, rejected.
                last = logits[mask]
                loss = -torch.nn.functional.logsigmoid(last[0::2] - last[1::2]).mean()
            else:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], labels[mask])
            return (loss, logits) if return_outputs else loss

    return PRMTrainer


def train_prm(backbone_dir: Path, examples: list[PRMExample], out_dir: Path, params: PRMParams) -> dict:
    """Train a PRM on `examples` from the causal LM in `backbone_dir`; save to `out_dir`; return metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainingArguments

    quiet_hf()
    if not examples:
        raise ValueError("no PRM examples: the trees gave no labelled nodes")
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    model = AutoModelForTokenClassification.from_pretrained(backbone_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    if params.loss == "pairwise":
        rows = []
        for pair in sibling_pairs(examples, params.pair_margin):
            encoded = {}
            for side in ("chosen", "rejected"):
                labels = [None] * (len(pair[side]) - 1) + [1.0]
                encoded[side] = encode(tokenizer, pair["prompt"], pair[side], labels, params.max_length)
            if all(any(x != IGNORE for x in e["labels"]) for e in encoded.values()):
                rows.append(encoded)
    else:
        rows = [encode(tokenizer, s["prompt"], s["steps"], s["labels"], params.max_length)
                for s in path_sequences(examples, hard=params.loss == "hard")]
        rows = [r for r in rows if any(label != IGNORE for label in r["labels"])]
    if not rows:
        raise ValueError(f"no PRM training rows for loss {params.loss!r} (no labelled step fits max_length)")
    args = TrainingArguments(remove_unused_columns=False, **training_args(params))
    trainer = _trainer_class(params.loss == "pairwise")(
        model=model if params.lora.r <= 0 else _with_lora(model, params.lora),
        args=args,
        train_dataset=Dataset.from_list(rows),
        data_collator=_collate(tokenizer.pad_token_id),
    )
    log.info("PRM (%s loss) on %d sequences from %d labelled steps", params.loss, len(rows), len(examples))
    result = trainer.train()
    save_trained(trainer, tokenizer, out_dir)
    return {
        "train_loss": round(result.training_loss, 5),
        "steps": result.global_step,
        "runtime_s": round(result.metrics["train_runtime"], 1),
        "sequences": len(rows),
        "labelled_steps": len(examples),
        "history": loss_history(trainer),
    }


def _with_lora(model, lora: LoraParams):
    from peft import get_peft_model

    config = peft_config(lora)
    config.task_type = "TOKEN_CLS"
    return get_peft_model(model, config)
