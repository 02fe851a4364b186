"""Public safety and helpfulness benchmarks, from their homes, into `SeedPrompt` rows with expected behaviour.

Each benchmark names its canonical source in `SOURCES`: the Hugging Face dataset that maintains it (id,
config, split, revision where one could be checked), the file its authors publish, and its licence.
The few small, permissively licensed files the default `eval` needs ship inside the project, under
`stair/benchdata/` (licence beside each, sha256 in its manifest), so a fresh clone evaluates offline;
every other benchmark loads from the Hub through `datasets`. A loader is chosen by name from `LOADERS`
and reads a local file (CSV/JSON/JSONL/parquet) or a Hub id (`hub:<repo>[:<config>][@<rev>]`) through
`stair.data.read_records`; it accepts the upstream file's columns and the Hub copy's. A row missing a
field the benchmark needs raises `ArtifactError` naming the source, line and field; a loader maps each
record to a row (None leaves it out), so rows stay aligned with the records' lines. `generic` maps any
file with a column mapping ({"text": ..., "kind": ..., "expected_behavior": ..., "ground_truth": ...}).
"""

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas import SeedPrompt
from stair.columns import check_mapping, map_prompts
from stair.data import MAX_RECORD_CHARS, Records, read_records
from stair.hub.refs import is_hub_ref
from stair.store import ArtifactError, validate_rows

# The copies shipped with the project (package data); MANIFEST records each file's sha256 and rows.
EMBEDDED = Path(__file__).parent / "benchdata"
MANIFEST = EMBEDDED / "manifest.json"


@dataclass(frozen=True)
class BenchmarkSource:
    """Where a public benchmark lives and under which licence; `embedded` is its copy under stair/benchdata."""

    hub: str  # hub:<repo>[:<config>][@<revision>]; no revision where none could be checked
    split: str  # the Hub split that holds the benchmark
    upstream: str  # the file the benchmark's authors publish
    license: str
    embedded: str = ""  # path under stair/benchdata, "" = not shipped (load it from the Hub or a local file)


# Revisions are commits that independent evaluation projects pin for these datasets; they were not
# fetched from here (no network). HarmBench has none: no pinned commit could be confirmed.
SOURCES = {
    "xstest": BenchmarkSource(
        "hub:walledai/XSTest@f1d713187c61b6ae64e602d74f0b3d812cc2e8e8", "test",
        "https://github.com/paul-rottger/exaggerated-safety/blob/main/xstest_prompts.csv", "CC-BY-4.0",
        "xstest/xstest_prompts.csv"),
    "advbench": BenchmarkSource(
        "hub:walledai/AdvBench@9d4730540082fa4017450b65ca1c0e1d8d30446e", "train",
        "https://github.com/llm-attacks/llm-attacks/blob/main/data/advbench/harmful_behaviors.csv", "MIT",
        "advbench/harmful_behaviors.csv"),
    "harmbench": BenchmarkSource(
        "hub:walledai/HarmBench:standard", "train",
        "https://github.com/centerforaisafety/HarmBench/blob/main/data/behavior_datasets/harmbench_behaviors_text_all.csv",
        "MIT"),
    "strongreject": BenchmarkSource(
        "hub:walledai/StrongREJECT@df54272b395ce9e584d2f8140519935425d8549f", "train",
        "https://github.com/alexandrasouly/strongreject/blob/main/strongreject_dataset/strongreject_dataset.csv",
        "MIT"),
    "gsm8k": BenchmarkSource(
        "hub:openai/gsm8k:main@740312add88f781978c0658806c59bc2815b9866", "test",
        "https://github.com/openai/grade-school-math/blob/master/grade_school_math/data/test.jsonl", "MIT",
        "gsm8k/test.jsonl"),  # the first 100 of the 1,319 test problems
    "math500": BenchmarkSource(
        "hub:HuggingFaceH4/MATH-500@6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", "test",
        "https://github.com/openai/prm800k/blob/main/prm800k/math_splits/test.jsonl", "MIT"),
}


def default_source(name: str) -> str:
    """Benchmark `name`'s shipped copy if the project has one, else its Hub dataset."""
    if name not in SOURCES:
        raise ValueError(f"benchmark {name!r} has no default source; known: {sorted(SOURCES)} (or give a path)")
    source = SOURCES[name]
    return str(EMBEDDED / source.embedded) if source.embedded else source.hub


def embedded_manifest() -> dict[str, dict]:
    """The shipped files (relative to stair/benchdata) -> {benchmark, rows, sha256, subset, upstream_sha256}."""
    return json.loads(MANIFEST.read_text())


def _field(record: dict, name: str, records: Records, row: int, *aliases: str) -> str:
    """The value of column `name` (or the first of `aliases` present: the Hub copy's name for it)."""
    for column in (name, *aliases):
        value = record.get(column)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return str(value)
    also = "".join(f" (or '{a}')" for a in aliases)
    raise ArtifactError(f"{records.where(row)}, field '{name}'{also}: missing or empty")


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
    """AdvBench harmful behaviours (`goal`; `prompt` on the Hub): refuse."""
    return [_prompt("advbench", source, row, _field(r, "goal", records, row, "prompt"), "safety", "refuse")
            for row, r in enumerate(records, start=1)]


def harmbench(records: Records, source: str, include_copyright: bool = False, **_) -> list[dict]:
    """HarmBench text behaviours: standard as is, contextual with the context prepended, copyright optional.

    Reads the upstream CSV (Behavior, FunctionalCategory, ContextString, ...) or a config of the Hub copy
    (prompt, category, context: the config, standard / contextual / copyright, already picks the rows).
    """
    rows = []
    for row, r in enumerate(records, start=1):
        upstream = "Behavior" in r or "prompt" not in r
        behavior = _field(r, "Behavior" if upstream else "prompt", records, row)
        if upstream:
            functional = _field(r, "FunctionalCategory", records, row)
        else:
            functional = "contextual" if r.get("context") else "standard"
        if functional == "copyright" and not include_copyright:
            rows.append(None)
            continue
        context = (r.get("ContextString" if upstream else "context") or "").strip()
        text = f"{context}\n\n---\n\n{behavior}" if functional == "contextual" and context else behavior
        rows.append(_prompt("harmbench", source, row, text, "safety", "refuse",
                            category=r.get("SemanticCategory" if upstream else "category"),
                            id=f"harmbench-{r.get('BehaviorID') or row}"))
    if not any(rows):
        raise ArtifactError(f"{records.name}: every behaviour is a copyright one, which the suite leaves out unless "
                            "include_copyright is set")
    return rows


def strongreject(records: Records, source: str, **_) -> list[dict]:
    """StrongREJECT (`category, source, forbidden_prompt`; `prompt` on the Hub): refuse."""
    return [_prompt("strongreject", source, row, _field(r, "forbidden_prompt", records, row, "prompt"), "safety", "refuse",
                    category=r.get("category")) for row, r in enumerate(records, start=1)]


def gsm8k(records: Records, source: str, **_) -> list[dict]:
    """GSM8K: the ground truth is the number after '####'."""
    rows = []
    for row, r in enumerate(records, start=1):
        answer = _field(r, "answer", records, row)
        if "####" not in answer:
            raise ArtifactError(f"{records.where(row)}, field 'answer': no '#### <number>' final answer")
        truth = answer.rpartition("####")[2].strip().replace(",", "")
        if not truth:
            raise ArtifactError(f"{records.where(row)}, field 'answer': nothing after '####' (expected the final number)")
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


def load_benchmark(name: str, source: str = "", limit: int | None = None, seed: int = 0, split: str = "",
                   max_record_chars: int = MAX_RECORD_CHARS, **options) -> list[SeedPrompt]:
    """Validated prompts of benchmark `name` from `source`; a seeded sample of `limit` rows if given.

    `source` "" is the benchmark's default (`default_source`); `split` is the Hub split to read, by
    default the one that holds the benchmark (`SOURCES`), else "train".
    """
    if name not in LOADERS:
        raise ValueError(f"benchmark {name!r} is not one of {sorted(LOADERS)}")
    source = source or default_source(name)
    if is_hub_ref(source) and not split:
        split = SOURCES[name].split if name in SOURCES else "train"
    records = read_records(source, split or "train", max_record_chars=max_record_chars)
    rows = LOADERS[name](records, records.name, **options)
    kept = [(row, where) for row, where in zip(rows, records.locations, strict=True) if row is not None]
    prompts = validate_rows([row for row, _ in kept], SeedPrompt, records.name, locations=[w for _, w in kept])
    if limit is not None and limit < len(prompts):
        prompts = sorted(random.Random(seed).sample(prompts, limit), key=lambda p: p.id)
    return prompts
