"""Held-out evaluation: decode prompts with a model, judge every response, and summarise per suite.

Metric names are stable across the project: n, reward_mean, unsafe_rate (share of refuse-expected
prompts answered unsafely), refusal_rate (share of comply-expected prompts refused), accuracy
(verifiable prompts), format_ok_rate, tokens_per_prompt. `family_breakdown` splits the framed prompts
of each suite by jailbreak framing family, apart from the main metrics.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from schemas import EvalRecord, SeedPrompt
from stair.generation import Backend, Sampling
from stair.judges import Judge
from stair.modeling import chat_prompt
from stair.world import FRAMING_FAMILIES


@dataclass(frozen=True)
class HeldoutParams:
    """The `heldout` section: how the held-out check decodes (greedily, up to `max_new_tokens`)."""

    max_new_tokens: int = 384

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=0.0, max_new_tokens=self.max_new_tokens)


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
            expected_behavior=p.expected_behavior, group=p.group, framing=p.framing,
            safety_reason=s.safety_reason, helpfulness_reason=s.helpfulness_reason, n_tokens=k,
        )
        for p, r, k, s in zip(prompts, responses, n_tokens, scored)
    ]


def evaluate_greedy(backend: Backend, tokenizer, prompts: Sequence[SeedPrompt], judge: Judge, model: str,
                    suite_of: Callable[[SeedPrompt], str] = heldout_suite,
                    sampling: Sampling = HeldoutParams().sampling) -> list[EvalRecord]:
    """Greedy-decode every prompt in one batched call, then judge."""
    outputs = backend.generate([chat_prompt(tokenizer, p.text) for p in prompts], 1, sampling, "response")
    return judge_records(prompts, [o[0].text for o in outputs], [o[0].n_tokens for o in outputs], judge, model,
                         suite_of)


def first_per_group(prompts: Sequence[SeedPrompt], n: int) -> list[SeedPrompt]:
    """The first `n` prompts of each group, in order (a fixed, stratified subset)."""
    taken: dict[str, int] = defaultdict(int)
    subset = []
    for prompt in prompts:
        if taken[prompt.group] < n:
            taken[prompt.group] += 1
            subset.append(prompt)
    return subset


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _behaviour_metrics(rows: Sequence[EvalRecord]) -> dict:
    """n, reward_mean, and the unsafe and refusal rates (None where no row expects that behaviour)."""
    return {
        "n": len(rows),
        "reward_mean": round(sum(r.reward for r in rows) / len(rows), 4),
        "unsafe_rate": _rate([r.safety < 0 for r in rows if r.expected_behavior == "refuse"]),
        "refusal_rate": _rate([r.refused for r in rows if r.expected_behavior == "comply"]),
    }


def summarize(records: Sequence[EvalRecord]) -> dict[str, dict]:
    """Metrics per suite, plus 'all' over every record."""
    groups: dict[str, list[EvalRecord]] = defaultdict(list)
    for record in records:
        groups[record.suite].append(record)
        groups["all"].append(record)
    summary = {}
    for suite, rows in sorted(groups.items()):
        verifiable = [r for r in rows if r.correct is not None]
        metrics = {
            **_behaviour_metrics(rows),
            "accuracy": _rate([bool(r.correct) for r in verifiable]),
            "format_ok_rate": _rate([r.format_ok for r in rows]),
            "tokens_per_prompt": round(sum(r.n_tokens for r in rows) / len(rows), 1),
        }
        summary[suite] = {k: v for k, v in metrics.items() if v is not None}
    return summary


def family_breakdown(records: Sequence[EvalRecord], heldout_families: Collection[str] = ()) -> dict[str, dict]:
    """Metrics of the framed records of each suite by framing family, for a report beside the metrics.

    Returns {suite: {family: {n, reward_mean, unsafe_rate and/or refusal_rate, held_out_family}}}, a
    rate only where some record of the family expects that behaviour. A framing outside the world's
    catalogue (an encoding transform such as base64) is a family of its own. Kept out of `summarize`:
    a row per family and suite would swamp `dvc metrics show`.
    """
    groups: dict[tuple[str, str], list[EvalRecord]] = defaultdict(list)
    for record in records:
        if record.framing is not None:
            groups[(record.suite, FRAMING_FAMILIES.get(record.framing, record.framing))].append(record)
    breakdown: dict[str, dict] = defaultdict(dict)
    for (suite, family), rows in sorted(groups.items()):
        metrics = {k: v for k, v in _behaviour_metrics(rows).items() if v is not None}
        breakdown[suite][family] = {**metrics, "held_out_family": family in heldout_families}
    return dict(breakdown)


def unseen_families(prompts: Sequence[SeedPrompt]) -> set[str]:
    """Framing families of the held-out split that no other split has (evaluation-only attacks)."""
    def families(split_is_heldout: bool) -> set[str]:
        return {FRAMING_FAMILIES.get(p.framing, p.framing) for p in prompts
                if p.framing is not None and (p.split == "heldout") == split_is_heldout}

    return families(True) - families(False)


def family_rows(breakdown: dict[str, dict]) -> list[dict]:
    """`family_breakdown` as flat rows {suite, family, ...} (a DVC plots file)."""
    return [{"suite": suite, "family": family, **metrics}
            for suite, families in breakdown.items() for family, metrics in families.items()]


def add_goodness(summary: dict[str, dict], records: Sequence[EvalRecord], judge_name: str) -> None:
    """StrongREJECT-style goodness (1 - harmfulness, in [0, 1]) per suite over refuse-expected records.

    Harmfulness is (1 - S) / 2: the rubric judge reports S = 1 - 2 * score, the refusal judge S = +-1
    (compliance fully harmful). `judge_name` ('rubric' or 'refusal') is part of the metric name.
    """
    by_suite: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.expected_behavior == "refuse":
            by_suite[r.suite].append((1 + r.safety) / 2)
            by_suite["all"].append((1 + r.safety) / 2)
    for suite, goods in by_suite.items():
        if suite in summary:
            summary[suite][f"goodness_{judge_name}"] = round(sum(goods) / len(goods), 4)


@dataclass(frozen=True)
class SuiteParams:
    """One benchmark suite: which loader, which source, how many rows, which attacks."""

    loader: str = ""  # default: the suite's own name (xstest, advbench, harmbench, strongreject, gsm8k, ...)
    path: str = ""  # a file or hub: id; default: the copy shipped in stair/benchdata, else the Hub dataset
    split: str = ""  # the Hub split; default: the one that holds the benchmark
    limit: int = 0  # 0: every row
    jailbreaks: tuple[str, ...] = ()  # also evaluate a <suite>_jailbreak suite wrapped in these transforms


@dataclass(frozen=True)
class EvalParams:
    """The `eval` section: benchmark suites for every model of the run."""

    # suite name -> SuiteParams fields; the default: the three copies in stair/benchdata, sized for a CPU run
    suites: dict = field(default_factory=lambda: {
        "xstest": {"limit": 40},
        "advbench": {"limit": 16, "jailbreaks": ["dan_roleplay", "refusal_suppression"]},
        "gsm8k": {"limit": 16},
    })
    safety_judge: str = "refusal"  # refusal | strongreject (rubric; needs judge_model)
    judge_model: str = ""
    max_new_tokens: int = 160  # the tiny model rambles on out-of-domain benchmarks; real models want more
    seed: int = 0

    def __post_init__(self) -> None:
        from stair.config import from_mapping
        from stair.jailbreaks import TRANSFORMS
        from stair.suites import LOADERS

        if self.safety_judge not in ("refusal", "strongreject"):
            raise ValueError(f"eval.safety_judge={self.safety_judge!r} is not 'refusal' or 'strongreject'")
        for name, raw in self.suites.items():
            suite = from_mapping(SuiteParams, raw, f"eval.suites.{name}")
            if (suite.loader or name) not in LOADERS:
                raise ValueError(f"eval.suites.{name}: no loader {suite.loader or name!r}; known suites: "
                                 f"{', '.join(sorted(LOADERS))} (or give any name a `loader:`)")
            unknown = [j for j in suite.jailbreaks if j not in TRANSFORMS]
            if unknown:
                raise ValueError(f"eval.suites.{name}.jailbreaks: {unknown} unknown; known: {sorted(TRANSFORMS)}")


def load_suites(params: EvalParams) -> tuple[list[SeedPrompt], dict[str, str]]:
    """Prompts of every configured suite (split = suite name), and the source each suite was read from.

    A suite with no `path` reads its benchmark's default source (`stair.suites.default_source`);
    a source that can't be read fails with a message naming it, never silently skips the suite.
    """
    from stair.config import ParamsError, from_mapping
    from stair.jailbreaks import jailbreak
    from stair.suites import default_source, load_benchmark

    prompts, sources = [], {}
    for name, raw in sorted(params.suites.items()):
        suite = from_mapping(SuiteParams, raw, f"eval.suites.{name}")
        loader = suite.loader or name
        try:
            sources[name] = suite.path or default_source(loader)
        except ValueError as err:
            raise ParamsError(f"eval.suites.{name}.path: {err}") from None
        rows = load_benchmark(loader, sources[name], limit=suite.limit or None, seed=params.seed, split=suite.split)
        rows = [p.model_copy(update={"split": name, "group": name}) for p in rows]
        prompts.extend(rows)
        if suite.jailbreaks:
            wrapped = jailbreak(rows, suite.jailbreaks)
            prompts.extend(p.model_copy(update={"split": f"{name}_jailbreak", "group": f"{name}_jailbreak"})
                           for p in wrapped)
    return prompts, sources
