"""Where prompts and SFT examples come from: the built-in world, a local file, or a Hub dataset.

Every record is mapped onto the `schemas` row types and validated; the first bad record raises an
`ArtifactError` naming the file, row and field.
"""

import csv
import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from schemas import SeedPrompt, SFTExample
from stair.hub import is_hub_ref, load_hub_records, parse_hub_ref
from stair.store import ArtifactError, validate_rows
from stair.world import WorldConfig, generate_world

# Column names tried, in order, when no explicit mapping is given (STAIR-SFT / STAIR-Prompts layouts first).
SFT_COLUMNS = {"prompt": ("prompt", "instruction", "question"), "response": ("response", "output", "completion", "answer")}
PROMPT_COLUMNS = {
    "text": ("question", "prompt", "text", "forbidden_prompt", "instruction"),
    "kind": ("type", "kind"),
    "ground_truth": ("ground_truth", "answer", "solution"),
    "expected_behavior": ("expected_behavior",),
    "category": ("category",),
    "id": ("id", "prompt_id"),
}


@dataclass(frozen=True)
class DataParams:
    """The `data` section: `builtin`, or files / Hub ids (`hub:<repo>[:<config>][@<rev>]`) for real data."""

    source: str = "builtin"
    sft: str = ""  # SFT set (prompt + structured response) when source != builtin
    prompts: str = ""  # seed prompts (question / type / ground_truth)
    heldout: str = ""  # held-out prompts; "" carves `heldout_fraction` out of `prompts`
    heldout_fraction: float = 0.1
    sft_columns: dict = field(default_factory=dict)
    prompt_columns: dict = field(default_factory=dict)
    split: str = "train"  # the Hub split to read
    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)


def read_records(source: str, split: str = "train") -> tuple[list[dict], str, dict]:
    """Raw records of a local file (jsonl, json, parquet, csv) or a Hub dataset; also its display name and facts."""
    if is_hub_ref(source):
        ref = parse_hub_ref(source)
        records, revision = load_hub_records(ref, split)
        return records, str(ref), {"hub_revision": revision}
    path = Path(source)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ArtifactError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
    elif suffix == ".json":
        try:
            records = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        if isinstance(records, dict) and "data" in records:
            records = records["data"]
        if not isinstance(records, list):
            raise ArtifactError(f"{path}: expected a list of records")
    elif suffix == ".parquet":
        records = pq.read_table(path).to_pylist()
    elif suffix == ".csv":
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle))
    else:
        raise ArtifactError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or .csv)")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ArtifactError(f"{path}, row {number}: expected an object, got {type(record).__name__}")
    return records, str(path), {}


def _column(record: dict, field_name: str, mapping: dict, defaults: dict) -> object:
    if field_name in mapping:
        return record.get(mapping[field_name])
    for name in defaults.get(field_name, ()):
        if name in record and record[name] not in ("", None):
            return record[name]
    return None


def map_prompts(records: list[dict], source: str, columns: dict, split: str = "") -> list[dict]:
    """Records -> SeedPrompt fields (unvalidated). Safety prompts default to 'refuse', others to 'comply'."""
    mapped = []
    for index, record in enumerate(records, start=1):
        kind = str(_column(record, "kind", columns, PROMPT_COLUMNS) or "helpfulness").strip().lower()
        expected = _column(record, "expected_behavior", columns, PROMPT_COLUMNS)
        truth = _column(record, "ground_truth", columns, PROMPT_COLUMNS)
        mapped.append({
            "id": str(_column(record, "id", columns, PROMPT_COLUMNS) or f"{Path(source).stem}-{index:06d}"),
            "text": _column(record, "text", columns, PROMPT_COLUMNS),
            "kind": kind,
            "ground_truth": None if truth is None else str(truth),
            "expected_behavior": expected or ("refuse" if kind == "safety" else "comply"),
            "source": source,
            "split": split or "unassigned",
            "group": "harmful" if kind == "safety" else "task",
            "category": _column(record, "category", columns, PROMPT_COLUMNS),
        })
    return mapped


def load_prompts(source: str, columns: dict, split_name: str = "", hub_split: str = "train") -> tuple[list[SeedPrompt], dict]:
    records, name, facts = read_records(source, hub_split)
    return validate_rows(map_prompts(records, name, columns, split_name), SeedPrompt, name), facts


def map_sft(records: list[dict], source: str, columns: dict) -> list[dict]:
    """Records (STAIR-SFT layout or mapped columns) -> SFTExample fields (unvalidated)."""
    kind_column = columns.get("kind")
    return [
        {
            "id": f"sft-{index:06d}", "prompt_id": f"sft-{index:06d}",
            "prompt": _column(record, "prompt", columns, SFT_COLUMNS),
            "response": _column(record, "response", columns, SFT_COLUMNS),
            "kind": str((record.get(kind_column) if kind_column else record.get("type") or record.get("kind"))
                        or "helpfulness").strip().lower(),
            "source": source,
        }
        for index, record in enumerate(records, start=1)
    ]


def load_sft(source: str, columns: dict, hub_split: str = "train") -> tuple[list[SFTExample], dict]:
    records, name, facts = read_records(source, hub_split)
    return validate_rows(map_sft(records, name, columns), SFTExample, name), facts


def assign_splits(prompts: list[SeedPrompt], iterations: int, heldout_fraction: float, seed: int) -> list[SeedPrompt]:
    """Shuffle (seeded) and deal prompts into 'heldout' and 'iter_1'..'iter_K'."""
    order = list(prompts)
    random.Random(seed).shuffle(order)
    n_heldout = round(len(order) * heldout_fraction)
    out = [p.model_copy(update={"split": "heldout"}) for p in order[:n_heldout]]
    for index, prompt in enumerate(order[n_heldout:]):
        out.append(prompt.model_copy(update={"split": f"iter_{index % iterations + 1}"}))
    return out


def build_dataset(params: DataParams, iterations: int) -> tuple[list[SeedPrompt], list[SFTExample], dict]:
    """All prompts (every split) and the SFT set for a run with `iterations` SI-MCTS rounds."""
    if params.source == "builtin":
        world = generate_world(dataclasses.replace(params.world, iterations=iterations))
        return world.prompts, world.sft, {}
    if not params.sft or not params.prompts:
        raise ValueError("data.source is not 'builtin', so data.sft and data.prompts must name files or hub: ids")
    sft, sft_facts = load_sft(params.sft, params.sft_columns, params.split)
    prompts, prompt_facts = load_prompts(params.prompts, params.prompt_columns, hub_split=params.split)
    if params.heldout:
        heldout, _ = load_prompts(params.heldout, params.prompt_columns, "heldout", params.split)
        prompts = assign_splits(prompts, iterations, 0.0, params.seed) + heldout
    else:
        prompts = assign_splits(prompts, iterations, params.heldout_fraction, params.seed)
    return prompts, sft, {"sft": sft_facts, "prompts": prompt_facts}
