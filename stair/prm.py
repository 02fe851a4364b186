"""Process reward model: labels from SI-MCTS step values, and batched step scoring.

A PRM is a causal-LM backbone with a one-logit token-classification head. It reads a response's
score at the closing token of every step: sigmoid(logit) estimates the step's value scaled to [0, 1].
`PRMScorer.score` scores all steps of many candidates with one forward pass per batch.
"""

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from schemas import PRMExample, SeedPrompt, TreeNode
from stair.format import OUTPUT_CLOSE, STEP_CLOSE, is_terminal_chunk, join_cut_steps, split_chunks
from stair.pairs import PATHS_SQL, kind_range, nodes_connection, query_rows
from stair.reward import RewardParams

AGGREGATIONS = {
    "min": min,
    "last": lambda scores: scores[-1],
    "mean": lambda scores: sum(scores) / len(scores),
    "product": lambda scores: math.prod(scores),
}


@dataclass(frozen=True)
class LabelParams:
    """Which nodes become PRM examples and how they are labelled (the `prm_labels` section)."""

    min_visits: int = 1
    hard_threshold: float = 0.5  # scaled value at or above which the hard label is 1
    max_tokens: int = 2048
    validation_share: float = 0.2  # share of prompts whose trees are kept out of training
    rollouts: bool = True  # also label each node's completed rollout (its final output) with its reward


def split_of(prompt_id: str, validation_share: float) -> str:
    """Stable train/validation assignment by prompt (crc32, not hash(): independent of PYTHONHASHSEED)."""
    return "validation" if zlib.crc32(prompt_id.encode()) % 1000 < validation_share * 1000 else "train"


def scale_value(value: float, kind: str, reward: RewardParams) -> float:
    """A node value mapped to [0, 1] by its prompt kind's value range."""
    lo, hi = kind_range(reward, kind)
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


_LABELLED = PATHS_SQL + """
select n.prompt_id, p.text as prompt, pp.steps, n.value, n.visits, n.kind, n.iteration,
       n.terminal or n.visits >= $min_visits as labelled, n.rollout, n.rollout_reward
from nodes n join paths pp on pp.tree_id = n.tree_id and pp.node_id = n.node_id
join prompts p on p.id = n.prompt_id
where n.parent_id is not null and n.n_tokens <= $max_tokens
order by n.iteration, n.tree_id, n.node_id
"""


def prm_examples(nodes: Sequence[TreeNode], prompts: Sequence[SeedPrompt], params: LabelParams,
                 reward: RewardParams) -> list[PRMExample]:
    """One example per sufficiently visited (or terminal) node: its path, soft and hard labels; and, with
    `params.rollouts`, one per completed rollout: the node's path plus the rollout's steps, labelled at
    its final output by the judged reward (the tree holds few final outputs; best-of-N scores them)."""
    con = nodes_connection(list(nodes), list(prompts))
    examples = []

    def add(row: dict, steps: list[str], value: float, visits: int, source: str) -> None:
        label = scale_value(value, row["kind"], reward)
        examples.append(PRMExample(
            prompt_id=row["prompt_id"], prompt=row["prompt"], steps=steps, label=round(label, 6),
            hard_label=int(label >= params.hard_threshold), value=value, visits=visits, kind=row["kind"],
            iteration=row["iteration"], split=split_of(row["prompt_id"], params.validation_share), source=source,
        ))

    # A step cut at the token limit joins the step that goes on from it: the PRM reads a label at a closing tag.
    for row in query_rows(con, _LABELLED, {"min_visits": params.min_visits, "max_tokens": params.max_tokens}):
        if row["labelled"]:
            add(row, join_cut_steps(row["steps"]), row["value"], row["visits"], "node")
        if params.rollouts and row["rollout"] and is_terminal_chunk(row["rollout"]):
            add(row, join_cut_steps(row["steps"] + split_chunks(row["rollout"])), row["rollout_reward"], 1, "rollout")
    return examples


def step_end_positions(input_ids: Sequence[int], close_ids: set[int], open_end: bool = False) -> list[int]:
    """Where the PRM reads a step: every token that closes a step or the output and, with `open_end` (the
    text ends in a step cut at the token limit, which has no closing tag), the last token."""
    positions = [i for i, token in enumerate(input_ids) if token in close_ids]
    if open_end and input_ids and input_ids[-1] not in close_ids:
        positions.append(len(input_ids) - 1)
    return positions


def ends_open(response: str) -> bool:
    """The response's last step was cut before its closing tag (so the PRM reads it at its last token)."""
    return bool(response.strip()) and not response.rstrip().endswith((STEP_CLOSE, OUTPUT_CLOSE))


def close_token_ids(tokenizer) -> set[int]:
    return {tokenizer.convert_tokens_to_ids(STEP_CLOSE), tokenizer.convert_tokens_to_ids(OUTPUT_CLOSE)}


class PRMScorer:
    """Scores every step of many (prompt, steps) candidates; one forward pass per `batch_size` candidates."""

    def __init__(self, model, tokenizer, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.close_ids = close_token_ids(tokenizer)
        self.forward_passes = 0

    @classmethod
    def from_path(cls, path, device: str = "auto", batch_size: int = 32) -> "PRMScorer":
        """Load a saved PRM; "auto" puts it on the GPU when there is one (as the generation backend does)."""
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from stair.generation import resolve_device

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=torch.float32).to(resolve_device(device))
        model.eval()
        return cls(model, tokenizer, batch_size)

    def score(self, prompt_texts: Sequence[str], responses: Sequence[str]) -> list[list[float]]:
        """Per candidate, the PRM score in [0, 1] after each of its steps (a closed step at its closing tag, a
        last step cut at the token limit at its last token; empty for an empty response)."""
        import torch

        from stair.modeling import chat_prompt

        texts = [chat_prompt(self.tokenizer, p) + r for p, r in zip(prompt_texts, responses)]
        scores: list[list[float]] = []
        self.tokenizer.padding_side = "right"
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.model.device)
            with torch.no_grad():
                logits = self.model(**batch).logits[..., 0]
            self.forward_passes += 1
            probs = torch.sigmoid(logits).tolist()
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for ids, row, length, response in zip(batch["input_ids"].tolist(), probs, lengths,
                                                  responses[start : start + self.batch_size]):
                ends = step_end_positions(ids[:length], self.close_ids, open_end=ends_open(response))
                scores.append([row[i] for i in ends])
        return scores

    def aggregate(self, step_scores: Sequence[Sequence[float]], how: str = "min") -> list[float]:
        """One score per candidate (min, last, mean or product of its step scores; 0 with no steps)."""
        if how not in AGGREGATIONS:
            raise ValueError(f"aggregation {how!r} is not one of {sorted(AGGREGATIONS)}")
        return [AGGREGATIONS[how](list(s)) if s else 0.0 for s in step_scores]


def sibling_steps(examples: Sequence[PRMExample], margin: float, by: str) -> list[tuple[PRMExample, PRMExample]]:
    """(better, worse) sibling tree steps (same prompt, iteration and prefix; rollouts are no tree steps)
    whose `by` ("label" or "value") differs by more than `margin`."""
    groups: dict[tuple, list[PRMExample]] = {}
    for e in (e for e in examples if e.source == "node"):
        groups.setdefault((e.prompt_id, e.iteration, tuple(e.steps[:-1])), []).append(e)
    return [(a, b) for g in groups.values() for a in g for b in g if getattr(a, by) - getattr(b, by) > margin]


def sibling_ranking_accuracy(scorer: PRMScorer, examples: Sequence[PRMExample], margin: float) -> tuple[float, int]:
    """Share of sibling pairs (values differing by more than `margin`) the PRM orders like their values.

    Scores each distinct (prompt, steps) once, in batches; returns (accuracy, number of pairs).
    """
    pairs = sibling_steps(examples, margin, by="value")
    if not pairs:
        return 0.0, 0
    distinct = {(e.prompt, tuple(e.steps)) for pair in pairs for e in pair}
    keys = sorted(distinct)
    scores = scorer.score([k[0] for k in keys], ["".join(k[1]) for k in keys])
    last = {k: (s[-1] if s else 0.0) for k, s in zip(keys, scores)}
    right = sum(last[(a.prompt, tuple(a.steps))] > last[(b.prompt, tuple(b.steps))] for a, b in pairs)
    return right / len(pairs), len(pairs)
