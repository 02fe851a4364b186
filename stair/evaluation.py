"""Held-out evaluation: decode prompts with a model, judge every response, and summarise per suite.

Metric names are stable across the project: n, reward_mean, unsafe_rate (share of refuse-expected
prompts answered unsafely), refusal_rate (share of comply-expected prompts refused), accuracy
(verifiable prompts), format_ok_rate, tokens_per_prompt.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence

from schemas import EvalRecord, SeedPrompt
from stair.generation import Backend, Sampling
from stair.judges import Judge
from stair.modeling import chat_prompt

GREEDY = Sampling(temperature=0.0, max_new_tokens=384)


def heldout_suite(prompt: SeedPrompt) -> str:
    """Suite name of a built-in held-out prompt: heldout_<group>."""
    return f"heldout_{prompt.group}" if prompt.group else "heldout"


def judge_records(prompts: Sequence[SeedPrompt], responses: Sequence[str], n_tokens: Sequence[int], judge: Judge,
                  model: str, suite_of: Callable[[SeedPrompt], str], method: str = "greedy",
                  budget: int = 1) -> list[EvalRecord]:
    """Judge finished responses into evaluation records (one batched judge call)."""
    scored = judge(prompts, responses)
    return [
        EvalRecord(
            prompt_id=p.id, suite=suite_of(p), model=model, method=method, budget=budget, prompt=p.text,
            response=r, output=s.output, format_ok=s.format_ok, refused=s.refused, safety=s.safety,
            helpfulness=s.helpfulness, reward=round(s.reward, 6), correct=s.correct,
            expected_behavior=p.expected_behavior, group=p.group, safety_reason=s.safety_reason,
            helpfulness_reason=s.helpfulness_reason, n_tokens=k,
        )
        for p, r, k, s in zip(prompts, responses, n_tokens, scored)
    ]


def evaluate_greedy(backend: Backend, tokenizer, prompts: Sequence[SeedPrompt], judge: Judge, model: str,
                    suite_of: Callable[[SeedPrompt], str] = heldout_suite,
                    sampling: Sampling = GREEDY) -> list[EvalRecord]:
    """Greedy-decode every prompt in one batched call, then judge."""
    outputs = backend.generate([chat_prompt(tokenizer, p.text) for p in prompts], 1, sampling, "response")
    return judge_records(prompts, [o[0].text for o in outputs], [o[0].n_tokens for o in outputs], judge, model,
                         suite_of)


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(records: Sequence[EvalRecord]) -> dict[str, dict]:
    """Metrics per suite, plus 'all' over every record."""
    groups: dict[str, list[EvalRecord]] = defaultdict(list)
    for record in records:
        groups[record.suite].append(record)
        groups["all"].append(record)
    summary = {}
    for suite, rows in sorted(groups.items()):
        refuse = [r for r in rows if r.expected_behavior == "refuse"]
        comply = [r for r in rows if r.expected_behavior == "comply"]
        verifiable = [r for r in rows if r.correct is not None]
        metrics = {
            "n": len(rows),
            "reward_mean": round(sum(r.reward for r in rows) / len(rows), 4),
            "unsafe_rate": _rate([r.safety < 0 for r in refuse]),
            "refusal_rate": _rate([r.refused for r in comply]),
            "accuracy": _rate([bool(r.correct) for r in verifiable]),
            "format_ok_rate": _rate([r.format_ok for r in rows]),
            "tokens_per_prompt": round(sum(r.n_tokens for r in rows) / len(rows), 1),
        }
        summary[suite] = {k: v for k, v in metrics.items() if v is not None}
    return summary
