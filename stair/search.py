"""Test-time search with a policy and a PRM: greedy, Best-of-N and step-level beam search.

All methods share one signature and are chosen by name from `SEARCHES`. Each returns, per prompt, the
chosen response and the tokens generated for that prompt (every sample counts), so methods can be
compared at equal compute. Work is batched across prompts: one generate call and one PRM scoring pass
per round.

A text cut at the token limit in the middle of a step or of the output has no closing tag for the PRM to
score, so it scores 0 (see `_scored_end`). Best-of-N samples whole responses: one cut at
`max_response_tokens` is a finished answer as it stands. Beam search samples steps: one cut at
`max_step_tokens` is, by `cut_steps`, a finished answer ("end") or an open beam that the next round
continues ("continue", as SI-MCTS's official code treats a cut step), if it stays among the best.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stair.format import CUT_STEPS, OUTPUT_CLOSE, STEP_CLOSE, ends_response
from stair.generation import Backend, Sampling
from stair.modeling import chat_prompt
from stair.prm import AGGREGATIONS, PRMScorer


@dataclass(frozen=True)
class SearchParams:
    """The `search` section: which methods, at which budgets (N for best-of-N, width for beam)."""

    methods: tuple[str, ...] = ("greedy", "bon", "beam")
    budgets: tuple[int, ...] = (2, 4)
    per_suite: int = 24  # held-out prompts per suite to search over (0: all); search costs budget x decoding
    beam_expansions: int = 2  # next steps sampled per beam per round
    max_steps: int = 6
    aggregation: str = "last"  # how best-of-N folds step scores: min | last | mean | product
    temperature: float = 0.2  # samples at 0.4-0.7 average well below greedy; best-of-N must win that back first
    top_p: float = 0.95
    top_k: int = 50
    max_step_tokens: int = 96
    max_response_tokens: int = 384
    cut_steps: str = "end"  # beam: a step cut at max_step_tokens ends its beam (end) or is continued (continue)
    prm_batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in SEARCHES]
        if unknown:
            raise ValueError(f"search.methods: {unknown} not in {sorted(SEARCHES)}")
        if self.cut_steps not in CUT_STEPS:
            raise ValueError(f"search.cut_steps={self.cut_steps!r} is not one of {CUT_STEPS}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"search.aggregation={self.aggregation!r} is not one of {sorted(AGGREGATIONS)}")


@dataclass(frozen=True)
class Found:
    response: str
    n_tokens: int


def greedy(backend: Backend, scorer: PRMScorer | None, requests: Sequence[str], budget: int,
           params: SearchParams) -> list[Found]:
    """Greedy decoding (the budget is ignored: one sample)."""
    prompts = [chat_prompt(backend.tokenizer, r) for r in requests]
    out = backend.generate(prompts, 1, Sampling(0.0, max_new_tokens=params.max_response_tokens), "response")
    return [Found(s[0].text, s[0].n_tokens) for s in out]


def _sampling(params: SearchParams, max_new_tokens: int) -> Sampling:
    return Sampling(params.temperature, params.top_p, params.top_k, max_new_tokens)


def _scored_end(text: str, step_scores: Sequence[float], score: float) -> float:
    """`score` if the text ends by closing a step or the output; 0 if generation cut it off mid-block
    (the PRM's scores are of the steps before, so a cut-off text would inherit its prefix's score)."""
    return score if step_scores and text.rstrip().endswith((STEP_CLOSE, OUTPUT_CLOSE)) else 0.0


def answer_scores(scorer: PRMScorer, requests: Sequence[str], texts: Sequence[str], aggregation: str) -> list[float]:
    """One PRM score per whole answer: its step scores folded by `aggregation` (0 if it was cut off)."""
    step_scores = scorer.score(requests, texts)
    return [_scored_end(t, s, a) for t, s, a in zip(texts, step_scores, scorer.aggregate(step_scores, aggregation))]


def best_of_n(backend: Backend, scorer: PRMScorer, requests: Sequence[str], budget: int,
              params: SearchParams) -> list[Found]:
    """Sample N whole responses per prompt, keep the one the PRM rates best."""
    prompts = [chat_prompt(backend.tokenizer, r) for r in requests]
    samples = backend.generate(prompts, budget, _sampling(params, params.max_response_tokens), "response")
    flat_requests = [r for r, s in zip(requests, samples) for _ in s]
    scores = answer_scores(scorer, flat_requests, [c.text for s in samples for c in s], params.aggregation)
    found, i = [], 0
    for group in samples:
        best = max(range(len(group)), key=lambda j: scores[i + j])
        found.append(Found(group[best].text, sum(c.n_tokens for c in group)))
        i += len(group)
    return found


def beam_search(backend: Backend, scorer: PRMScorer, requests: Sequence[str], budget: int,
                params: SearchParams) -> list[Found]:
    """Step-level beam search: each round every open beam proposes `beam_expansions` next steps, the PRM
    scores every candidate's last step, and the best `budget` per prompt survive. Ends when every beam
    has its output or after `max_steps` rounds."""
    prompts = [chat_prompt(backend.tokenizer, r) for r in requests]
    # Per prompt: beams of (text, done, score).
    beams: list[list[tuple[str, bool, float]]] = [[("", False, 0.0)] for _ in requests]
    tokens = [0] * len(requests)
    sampling = _sampling(params, params.max_step_tokens)
    for _ in range(params.max_steps):
        open_beams = [(i, text) for i, group in enumerate(beams) for text, done, _ in group if not done]
        if not open_beams:
            break
        out = backend.generate([prompts[i] + text for i, text in open_beams], params.beam_expansions, sampling,
                               "step")
        candidates: list[tuple[int, str, bool]] = []
        for (i, text), samples in zip(open_beams, out):
            for c in samples:
                tokens[i] += c.n_tokens
                candidates.append((i, text + c.text, ends_response(c.text, c.stopped, params.cut_steps)))
        scores = answer_scores(scorer, [requests[i] for i, _, _ in candidates], [t for _, t, _ in candidates],
                               "last")
        pools: list[list[tuple[str, bool, float]]] = [[b for b in group if b[1]] for group in beams]
        for (i, text, done), score in zip(candidates, scores):
            pools[i].append((text, done, score))
        beams = [sorted(pool, key=lambda b: -b[2])[:budget] for pool in pools]
    return [Found(max(group, key=lambda b: (b[1], b[2]))[0], n) for group, n in zip(beams, tokens)]


SEARCHES: dict[str, Callable[..., list[Found]]] = {"greedy": greedy, "bon": best_of_n, "beam": beam_search}


def run_search(method: str, backend: Backend, scorer: PRMScorer | None, requests: Sequence[str], budget: int,
               params: SearchParams) -> list[Found]:
    """Run the search method named `method` over all requests at one budget."""
    return SEARCHES[method](backend, scorer, requests, budget, params)


def expected_best_of_n(rewards: Sequence[float], scores: Sequence[float], n: int) -> float:
    """Mean reward of the PRM's pick over every n-subset of one prompt's samples: best-of-n's expected
    reward, without the noise of drawing one subset (a tie goes to the earlier sample, as in best_of_n)."""
    picks = [rewards[max(subset, key=lambda j: scores[j])] for subset in itertools.combinations(range(len(rewards)), n)]
    return sum(picks) / len(picks)
