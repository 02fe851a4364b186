"""Process reward model training on MCTS step values, with plain `transformers.Trainer`.

A one-logit token-classification head on a causal-LM backbone (by default the final policy). Each
training sequence is a maximal path of a tree (prompt + steps); it carries a label at the closing
token of every labelled step on it, so a path's prefixes share one forward pass. Losses:
`soft` (BCE on the value scaled to [0, 1], the default) or `hard` (BCE on the thresholded label),
each plus `pairwise_weight` x Bradley-Terry on sibling steps whose labels differ by more than
`pair_margin`; or `pairwise` (Bradley-Terry alone). Ranking alone leaves the scores on no common
scale: they order siblings but not whole answers to different prompts, which best-of-N needs.
`runs` > 1 averages the weights of several runs from one start, which steadies the result.
TRL's PRMTrainer is not used: it casts labels to int (soft labels become 0) and was removed in 1.14.
"""

import dataclasses
import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from schemas import PRMExample
from stair.modeling import chat_prompt
from stair.prm import close_token_ids, ends_open, sibling_steps, step_end_positions
from stair.store import ArtifactError
from stair.training.common import (
    LoraParams,
    TrainParams,
    gathered_state_dict,
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

    learning_rate: float = 3e-4
    epochs: float = 1.0
    loss: str = "soft"
    pairwise_weight: float = 3.0  # soft / hard: + this x Bradley-Terry on sibling pairs (BCE alone orders them worse)
    pair_margin: float = 0.1  # scaled-label gap between siblings to form a pair
    runs: int = 3  # > 1: this many runs (seeds seed, seed + 1, ...) from one start, their weights averaged

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"prm.loss={self.loss!r} is not one of {LOSSES}")
        if self.runs < 1:
            raise ValueError(f"prm.runs={self.runs} must be at least 1")


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
    """Sibling tree steps whose labels differ by more than `margin`, as prompt, chosen and rejected steps."""
    return [{"prompt": a.prompt, "chosen": a.steps, "rejected": b.steps}
            for a, b in sibling_steps(examples, margin, by="label")]


def encode(tokenizer, prompt: str, steps: list[str], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the prompt and steps (cut at `max_length`), and the positions of the step ends kept."""
    response = "".join(steps)
    ids = tokenizer(chat_prompt(tokenizer, prompt) + response, add_special_tokens=False)["input_ids"]
    # A last step cut at the token limit is read at its last token, unless max_length cut the text too.
    open_end = ends_open(response) and len(ids) <= max_length
    ids = ids[:max_length]
    return ids, step_end_positions(ids, close_token_ids(tokenizer), open_end)


def training_rows(tokenizer, examples: list[PRMExample], params: PRMParams) -> list[dict]:
    """Rows of one or two sequences: a path with BCE targets at its labelled step ends (soft, hard), or
    a sibling pair (chosen, rejected) with the position of each side's last step (Bradley-Terry)."""
    rows = []
    if params.loss != "pairwise":
        for path in path_sequences(examples, hard=params.loss == "hard"):
            ids, ends = encode(tokenizer, path["prompt"], path["steps"], params.max_length)
            targets = [IGNORE] * len(ids)
            for position, label in zip(ends, path["labels"]):
                if label is not None:
                    targets[position] = label
            if any(t != IGNORE for t in targets):
                rows.append({"input_ids": [ids], "labels": [targets], "rank_at": []})
    if params.loss == "pairwise" or params.pairwise_weight > 0:
        for pair in sibling_pairs(examples, params.pair_margin):
            chosen, rejected = (encode(tokenizer, pair["prompt"], pair[side], params.max_length)
                                for side in ("chosen", "rejected"))
            # Both last steps must survive the cut at max_length to be compared.
            if len(chosen[1]) == len(pair["chosen"]) and len(rejected[1]) == len(pair["rejected"]):
                rows.append({"input_ids": [chosen[0], rejected[0]],
                             "labels": [[IGNORE] * len(chosen[0]), [IGNORE] * len(rejected[0])],
                             "rank_at": [chosen[1][-1], rejected[1][-1]]})
    return rows


def _collate(pad_id: int):
    import torch

    def collate(rows: list[dict]) -> dict:
        sequences = [(ids, labels) for r in rows for ids, labels in zip(r["input_ids"], r["labels"])]
        width = max(len(ids) for ids, _ in sequences)
        ids = torch.full((len(sequences), width), pad_id)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        labels = torch.full((len(sequences), width), IGNORE)
        for i, (row_ids, row_labels) in enumerate(sequences):
            ids[i, : len(row_ids)] = torch.tensor(row_ids)
            mask[i, : len(row_ids)] = 1
            labels[i, : len(row_ids)] = torch.tensor(row_labels)
        pairs, first = [], 0  # (chosen sequence, its position, rejected sequence, its position)
        for r in rows:
            if r["rank_at"]:
                pairs.append([first, r["rank_at"][0], first + 1, r["rank_at"][1]])
            first += len(r["input_ids"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels,
                "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 4)}

    return collate


def prm_loss(logits, labels, pairs, pairwise_weight: float = 1.0, shares: tuple[float, float] = (1.0, 1.0)):
    """BCE where `labels` is not IGNORE, plus `pairwise_weight` x Bradley-Terry on `pairs` (P x 4 rows of
    chosen sequence, position, rejected sequence, position); either term is left out when it has no data.

    `shares` scale the two means (see `process_shares`), so that averaging the losses of several processes
    gives the means over all their labels and pairs, as one process would compute them.
    """
    import torch.nn.functional as F

    mask = labels != IGNORE
    loss = F.binary_cross_entropy_with_logits(logits[mask], labels[mask]) if mask.any() else logits.sum() * 0
    loss = loss * shares[0]
    if len(pairs):
        chosen, rejected = logits[pairs[:, 0], pairs[:, 1]], logits[pairs[:, 2], pairs[:, 3]]
        loss = loss + pairwise_weight * shares[1] * -F.logsigmoid(chosen - rejected).mean()
    return loss


def process_shares(accelerator, labels, pairs) -> tuple[float, float]:
    """Per term (labelled steps, sibling pairs): processes x this process's count / the count over all of
    them. The processes' batches hold different numbers of labels, so plain per-process means, averaged,
    would weigh one process's labels more than another's; exactly 1.0 in a single process."""
    if accelerator.num_processes == 1:
        return 1.0, 1.0
    local = labels.new_tensor([float((labels != IGNORE).sum()), float(len(pairs))])
    total = accelerator.reduce(local.clone(), reduction="sum")
    return tuple(float(accelerator.num_processes * n / max(t, 1.0)) for n, t in zip(local.tolist(), total.tolist()))


def _trainer_class(pairwise_weight: float):
    from transformers import Trainer

    class PRMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels, pairs = inputs.pop("labels"), inputs.pop("pairs")
            logits = model(**inputs).logits[..., 0]
            loss = prm_loss(logits, labels, pairs, pairwise_weight, process_shares(self.accelerator, labels, pairs))
            return (loss, logits) if return_outputs else loss

    return PRMTrainer


def train_prm(backbone_dir: Path, examples: list[PRMExample], out_dir: Path, params: PRMParams) -> dict:
    """Train a PRM on `examples` from the causal LM in `backbone_dir`; save to `out_dir`; return metrics.

    With `params.runs` > 1 the runs differ only in their seed (data order, the head's dropout): each
    starts from the same backbone and the same head initialisation, so their weights can be averaged
    (WARM, Ramé et al. 2024). That evens out the spread between single runs, and scoring still costs
    one model.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainingArguments

    quiet_hf()
    if not examples:
        raise ArtifactError("data/prm_labels: no labelled steps (the trees gave no node with enough visits)")
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    rows = training_rows(tokenizer, examples, params)
    if not rows:  # the PRM is read where a step closes: steps that never close leave it nothing to learn
        raise ArtifactError(
            f"data/prm_labels: none of {len(examples)} labelled steps closes a step or the output within "
            f"prm.max_length={params.max_length} tokens (loss {params.loss!r}), so the PRM has nothing to learn: "
            f"is the policy format-aligned, and are mcts.max_step_tokens and prm.max_length long enough?")
    pairwise_weight = 1.0 if params.loss == "pairwise" else params.pairwise_weight
    n_pairs = sum(bool(r["rank_at"]) for r in rows)
    log.info("PRM (%s loss, pairwise weight %s, %d run(s)) on %d paths and %d sibling pairs from %d labelled "
             "steps", params.loss, pairwise_weight, params.runs, len(rows) - n_pairs, n_pairs, len(examples))
    dataset, trainer_class = Dataset.from_list(rows), _trainer_class(pairwise_weight)
    summed, results, history = {}, [], []  # summed: the runs' weights, on CPU (a copy of one model)
    for run in range(params.runs):
        torch.manual_seed(params.seed)  # the same head initialisation in every run
        model = AutoModelForTokenClassification.from_pretrained(backbone_dir, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        args = TrainingArguments(remove_unused_columns=False,
                                 **training_args(dataclasses.replace(params, seed=params.seed + run)))
        trainer = trainer_class(
            model=model if params.lora.r <= 0 else _with_lora(model, params.lora),
            args=args,
            train_dataset=dataset,
            data_collator=_collate(tokenizer.pad_token_id),
        )
        results.append(trainer.train())
        shutil.rmtree(args.output_dir, ignore_errors=True)
        offset = sum(r.global_step for r in results[:-1])  # one x axis: run k's steps follow run k - 1's
        history += [{**row, "step": row["step"] + offset, "run": run} for row in loss_history(trainer)]
        if params.runs > 1:  # every process gathers (sharded weights need all of them); the main one sums
            for key, value in gathered_state_dict(trainer).items():
                summed[key] = summed.get(key, 0) + value.detach().cpu()
    save_trained(trainer, tokenizer, out_dir,
                 {key: value / params.runs for key, value in summed.items()} if params.runs > 1 else None)
    return {
        "train_loss": round(sum(r.training_loss for r in results) / len(results), 5),
        "steps": sum(r.global_step for r in results),
        "runtime_s": round(sum(r.metrics["train_runtime"] for r in results), 1),
        "runs": params.runs,
        "paths": len(rows) - n_pairs,
        "sibling_pairs": n_pairs,
        "labelled_steps": len(examples),
        "history": history,
    }


def _with_lora(model, lora: LoraParams):
    from peft import get_peft_model

    config = peft_config(lora)
    config.task_type = "TOKEN_CLS"
    return get_peft_model(model, config)
