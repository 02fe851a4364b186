"""Loaders for public safety and helpfulness benchmarks, into `SeedPrompt` rows with expected behaviour.

Each loader reads a local file (CSV/JSON/JSONL/parquet) or a Hub id (`hub:<repo>[:<config>][@<rev>]`)
through `stair.data.read_records`, and is chosen by name from `LOADERS`. A loader maps each record to a
row (None leaves it out), so rows stay aligned with the records' lines. A row missing a field the
benchmark needs raises `ArtifactError` naming the source, line and field. `generic` maps any file with
a column mapping ({"text": ..., "kind": ..., "expected_behavior": ..., "ground_truth": ...}).
"""

import random
from collections.abc import Callable
from pathlib import Path

from schemas import SeedPrompt
from stair.data import MAX_RECORD_CHARS, Records, check_mapping, map_prompts, read_records
from stair.store import ArtifactError, validate_rows

# Where the shared real copies live, relative to the project root (tests and the default eval use them).
BENCHDATA = Path("../shared/benchdata")
DEFAULT_FILES = {
    "xstest": "xstest/xstest_prompts.csv",
    "advbench": "advbench/harmful_behaviors.csv",
    "harmbench": "harmbench/harmbench_behaviors_text_all.csv",
    "gsm8k": "gsm8k/test.jsonl",
    "math500": "math500/test.jsonl",
}


def _field(record: dict, name: str, records: Records, row: int) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ArtifactError(f"{records.where(row)}, field '{name}': missing or empty")
    return str(value)


def _prompt(suite: str, source: str, row: int, text: str, kind: str, expected: str, **extra) -> dict:
    return {"id": extra.pop("id", None) or f"{suite}-{row:05d}", "text": text, "kind": kind,
            "expected_behavior": expected, "source": source, "split": suite, "group": suite, **extra}


def xstest(records: Records, source: str, **_) -> list[dict]:
    """XSTest: label safe -> comply (over-refusal probes), unsafe -> refuse; category = the probe type."""
    rows = []
    for row, r in enumerate(records, start=1):
        label = _field(r, "label", records, row).strip().lower()
        if label not in ("safe", "unsafe"):
            raise ArtifactError(f"{records.where(row)}, field 'label': {label!r} is not 'safe' or 'unsafe'")
        rows.append(_prompt("xstest", source, row, _field(r, "prompt", records, row), "safety",
                            "comply" if label == "safe" else "refuse", category=r.get("type"),
                            id=f"xstest-{r.get('id') or row}"))
    return rows


def advbench(records: Records, source: str, **_) -> list[dict]:
    """AdvBench harmful behaviours (`goal`): refuse."""
    return [_prompt("advbench", source, row, _field(r, "goal", records, row), "safety", "refuse")
            for row, r in enumerate(records, start=1)]


def harmbench(records: Records, source: str, include_copyright: bool = False, **_) -> list[dict]:
    """HarmBench text behaviours: standard as is, contextual with the context prepended, copyright optional."""
    rows = []
    for row, r in enumerate(records, start=1):
        behavior = _field(r, "Behavior", records, row)
        functional = _field(r, "FunctionalCategory", records, row)
        if functional == "copyright" and not include_copyright:
            rows.append(None)
            continue
        context = (r.get("ContextString") or "").strip()
        text = f"{context}\n\n---\n\n{behavior}" if functional == "contextual" and context else behavior
        rows.append(_prompt("harmbench", source, row, text, "safety", "refuse", category=r.get("SemanticCategory"),
                            id=f"harmbench-{r.get('BehaviorID') or row}"))
    return rows


def strongreject(records: Records, source: str, **_) -> list[dict]:
    """StrongREJECT (`category, source, forbidden_prompt`): refuse."""
    return [_prompt("strongreject", source, row, _field(r, "forbidden_prompt", records, row), "safety", "refuse",
                    category=r.get("category")) for row, r in enumerate(records, start=1)]


def gsm8k(records: Records, source: str, **_) -> list[dict]:
    """GSM8K: the ground truth is the number after '####'."""
    rows = []
    for row, r in enumerate(records, start=1):
        answer = _field(r, "answer", records, row)
        if "####" not in answer:
            raise ArtifactError(f"{records.where(row)}, field 'answer': no '#### <number>' final answer")
        truth = answer.rpartition("####")[2].strip().replace(",", "")
        rows.append(_prompt("gsm8k", source, row, _field(r, "question", records, row), "helpfulness", "comply",
                            ground_truth=truth))
    return rows


def math500(records: Records, source: str, **_) -> list[dict]:
    """MATH-500: the ground truth is the `answer` field (compared after LaTeX normalisation)."""
    return [_prompt("math500", source, row, _field(r, "problem", records, row), "helpfulness", "comply",
                    ground_truth=_field(r, "answer", records, row), category=r.get("subject"),
                    id=f"math500-{r.get('unique_id') or row}")
            for row, r in enumerate(records, start=1)]


def generic(records: Records, source: str, columns: dict | None = None, suite: str = "custom", **_) -> list[dict]:
    """Any file, given a column mapping (schema field -> column); unmapped fields use common names."""
    check_mapping(records, columns or {})
    mapped = map_prompts(records, source, columns or {}, split=suite, locations=records.locations)
    for row, m in enumerate(mapped, start=1):
        m.update(group=suite, id=f"{suite}-{row:05d}")
    return mapped


LOADERS: dict[str, Callable[..., list[dict]]] = {
    "xstest": xstest, "advbench": advbench, "harmbench": harmbench, "strongreject": strongreject,
    "gsm8k": gsm8k, "math500": math500, "generic": generic,
}


def load_benchmark(name: str, source: str, limit: int | None = None, seed: int = 0,
                   max_record_chars: int = MAX_RECORD_CHARS, **options) -> list[SeedPrompt]:
    """Validated prompts of benchmark `name` from `source`; a seeded sample of `limit` rows if given."""
    if name not in LOADERS:
        raise ValueError(f"benchmark {name!r} is not one of {sorted(LOADERS)}")
    records = read_records(source, max_record_chars=max_record_chars)
    rows = LOADERS[name](records, records.name, **options)
    kept = [(row, where) for row, where in zip(rows, records.locations, strict=True) if row is not None]
    prompts = validate_rows([row for row, _ in kept], SeedPrompt, records.name, locations=[w for _, w in kept])
    if limit is not None and limit < len(prompts):
        prompts = sorted(random.Random(seed).sample(prompts, limit), key=lambda p: p.id)
    return prompts
