"""Where prompts and SFT examples come from: the built-in world, a local file, or a Hub dataset.

Every record is mapped onto the `schemas` row types (`stair.columns`) and validated; the first bad
record raises an `ArtifactError` naming the file, row and field.
"""

import codecs
import csv
import dataclasses
import io
import json
import math
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import SeedPrompt, SFTExample
from stair.columns import PROMPT_COLUMNS, SFT_COLUMNS, check_fields, check_mapping, map_prompts, map_sft
from stair.errors import ArtifactError
from stair.hub.pull import load_hub_records
from stair.hub.refs import is_hub_ref, parse_hub_ref
from stair.store import validate_rows
from stair.world import WorldConfig, generate_world

# A record bigger than this (characters over all its fields) is refused: one runaway row would otherwise be
# tokenized and padded to, and allocated for, in every batch it joins.
MAX_RECORD_CHARS = 100_000


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
    max_record_chars: int = MAX_RECORD_CHARS  # a longer record (all fields together) is an error
    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        if self.source not in ("builtin", "files"):
            raise ValueError(f"data.source={self.source!r} is not 'builtin' or 'files'")
        if self.source == "files" and (not self.sft or not self.prompts):
            raise ValueError("data.source is 'files', so data.sft and data.prompts must name files or hub: ids")
        check_fields(self.sft_columns, SFT_COLUMNS, "data.sft_columns")
        check_fields(self.prompt_columns, PROMPT_COLUMNS, "data.prompt_columns")


class Records(list):
    """Raw records (dicts) of one input, each with its place in the file for messages ('line 7', 'row 3')."""

    def __init__(self, rows: list[dict], name: str, locations: list[str], facts: dict | None = None):
        super().__init__(rows)
        self.name, self.locations, self.facts = name, locations, facts or {}

    def where(self, row: int) -> str:
        """'<file>, line N' of the `row`-th record (1-based)."""
        return f"{self.name}, {self.locations[row - 1]}"


def read_records(source: str, split: str = "train", max_record_chars: int = MAX_RECORD_CHARS) -> Records:
    """Every record of a local file (jsonl, json, csv, parquet) or a Hub dataset, checked as far as a file can be.

    Text files are read as UTF-8 (a leading BOM is dropped). Raises ArtifactError, naming the file, the
    1-based line (row for parquet and Hub data) and the field, for: undecodable bytes, malformed JSON or
    CSV (ragged rows, unclosed quotes), a record that is not an object, NaN or infinity in any field, a
    record over `max_record_chars` characters, or no records at all.
    """
    if is_hub_ref(source):
        ref = parse_hub_ref(source)
        rows, revision = load_hub_records(ref, split)
        records = Records(rows, str(ref), [f"row {i}" for i in range(1, len(rows) + 1)], {"hub_revision": revision})
    else:
        path = Path(source)
        if not path.is_file():
            raise ArtifactError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        suffix = path.suffix.lower()
        if suffix not in READERS:
            raise ArtifactError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json, .parquet or .csv)")
        rows, locations = READERS[suffix](path)
        records = Records(rows, str(path), locations)
    if not records:
        raise ArtifactError(f"{records.name}: no records (an empty input is not a dataset)")
    for row, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ArtifactError(f"{records.where(row)}: expected an object, got {type(record).__name__}")
        sizes = {str(key): _check_value(value, str(key), records.where(row)) for key, value in record.items()}
        if sum(sizes.values()) > max_record_chars:
            biggest = max(sizes, key=sizes.get)
            raise ArtifactError(f"{records.where(row)}, field '{biggest}': {sizes[biggest]:,} characters; the record "
                                f"has {sum(sizes.values()):,}, over the limit of {max_record_chars:,} (max_record_chars)")
    return records


def _check_value(value: object, field_name: str, where: str) -> int:
    """The characters in `value` (nested lists and objects included); refuses bytes that were not UTF-8 and NaN."""
    if isinstance(value, str):
        bad = next((ch for ch in value if "\udc80" <= ch <= "\udcff"), None)
        if bad is not None:  # a byte `_read_text` could not decode, kept as a lone surrogate
            raise ArtifactError(f"{where}, field '{field_name}': not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02x})")
        return len(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ArtifactError(f"{where}, field '{field_name}': {value} is not a value (write null for a missing one)")
    if isinstance(value, dict):
        return sum(_check_value(v, f"{field_name}.{k}", where) + len(str(k)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_check_value(v, f"{field_name}[{i}]", where) for i, v in enumerate(value))
    return len(str(value))


def _read_text(path: Path) -> str:
    """The file as text: UTF-8 without a BOM; undecodable bytes become lone surrogates, reported per field."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ArtifactError(f"{path}: UTF-16 text; save it as UTF-8")
    return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _read_jsonl(path: Path) -> tuple[list, list[str]]:
    rows, locations = [], []
    for number, line in enumerate(_read_text(path).split("\n"), start=1):  # not splitlines: JSON may hold U+2028
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno})") from None
        except RecursionError:
            raise ArtifactError(f"{path}, line {number}: JSON nested too deeply to be a record") from None
        locations.append(f"line {number}")
    return rows, locations


def _read_json(path: Path) -> tuple[list, list[str]]:
    """A JSON list of records, or an object whose "data" is one; each record located by the line it starts on."""
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}, line {err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise ArtifactError(f"{path}: JSON nested too deeply to hold records") from None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        start = _member_start(text, "data")
    elif isinstance(document, list):
        start = _skip_space(text, 0)
    else:
        raise ArtifactError(f"{path}: expected a list of records (or an object with a \"data\" list)")
    # The document is valid JSON, so the array can be walked element by element to find each one's line.
    decoder, rows, locations = json.JSONDecoder(), [], []
    pos = _skip_space(text, start + 1)
    while text[pos] != "]":
        locations.append(f"line {_line_of(text, pos)}")
        value, pos = decoder.raw_decode(text, pos)
        rows.append(value)
        pos = _skip_space(text, pos)
        pos = _skip_space(text, pos + 1) if text[pos] == "," else pos
    return rows, locations


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _member_start(text: str, key: str) -> int:
    """Position of the value of top-level member `key` in valid JSON text holding an object (of its last
    occurrence, the one `json.loads` keeps)."""
    decoder = json.JSONDecoder()
    pos, found = _skip_space(text, _skip_space(text, 0) + 1), -1
    while text[pos] != "}":
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, _skip_space(text, pos) + 1)  # past ':'
        if name == key:
            found = pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        pos = _skip_space(text, pos + 1) if text[pos] == "," else pos
    return found


def _read_csv(path: Path) -> tuple[list, list[str]]:
    """Rows as {header: cell}; a row whose field count differs from the header's, or a broken quote, is an error."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)
    rows: list[dict] = []
    locations: list[str] = []
    # The size limit is max_record_chars, checked with the field named; csv's own (128 KiB) would not name it.
    previous_limit = csv.field_size_limit(sys.maxsize)
    try:
        _csv_rows(path, reader, rows, locations)
    finally:
        csv.field_size_limit(previous_limit)
    return rows, locations


def _csv_rows(path: Path, reader, rows: list, locations: list) -> None:
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise ArtifactError(f"{path}, line {start}: malformed CSV ({err}; an unclosed quote?)") from None
        if not fields:
            continue  # a blank line
        if header is None:
            duplicated = sorted({name for name in fields if fields.count(name) > 1})
            if duplicated:
                raise ArtifactError(f"{path}, line {start}: the header names column {duplicated[0]!r} twice")
            header = fields
            continue
        if len(fields) != len(header):
            end = f"-{reader.line_num}" if reader.line_num != start else ""
            raise ArtifactError(f"{path}, line {start}{end}: {len(fields)} fields where the header has {len(header)} "
                                "(a stray delimiter or an unclosed quote?)")
        rows.append(dict(zip(header, fields)))
        locations.append(f"line {start}")


def _read_parquet(path: Path) -> tuple[list, list[str]]:
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise ArtifactError(f"{path}: not a readable parquet file ({err})") from None
    return rows, [f"row {i}" for i in range(1, len(rows) + 1)]


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def load_prompts(source: str, columns: dict, role: str, split_name: str = "", hub_split: str = "train",
                 max_record_chars: int = MAX_RECORD_CHARS) -> tuple[list[SeedPrompt], Records]:
    """The prompts of one input, and its records (for locations and facts); default ids are '<role>-<row>'."""
    records = read_records(source, hub_split, max_record_chars)
    check_mapping(records, columns)
    rows = map_prompts(records, records.name, columns, split_name, records.locations, id_prefix=role)
    return validate_rows(rows, SeedPrompt, records.name, locations=records.locations), records


def check_unique_ids(inputs: list[tuple[list[SeedPrompt], Records]]) -> None:
    """Every prompt id once over all inputs: trees, pairs and evaluations are keyed by it.

    Raises ArtifactError naming the file and line of the second use, and where the id was first seen.
    """
    first_seen: dict[str, str] = {}
    for prompts, records in inputs:
        for row, prompt in enumerate(prompts, start=1):
            if prompt.id in first_seen:
                raise ArtifactError(f"{records.where(row)}: duplicate prompt id {prompt.id!r} (first at "
                                    f"{first_seen[prompt.id]}); ids must be unique over data.prompts and "
                                    "data.heldout")
            first_seen[prompt.id] = records.where(row)


def prompt_key(text: str) -> str:
    """The text as compared for duplicates: case-folded, every run of punctuation and space one space."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def drop_heldout_duplicates(prompts: list[SeedPrompt], sft: list[SFTExample]) -> tuple[list[SeedPrompt], int]:
    """`prompts` without the held-out ones whose text (by `prompt_key`) is an SFT or seed prompt's, and how many
    were dropped. STAIR-SFT and STAIR-Prompts share their sources, so a held-out prompt may be one trained on.

    Raises ArtifactError when held-out prompts were given and every one of them is a training prompt.
    """
    trained = {prompt_key(e.prompt) for e in sft} | {prompt_key(p.text) for p in prompts if p.split != "heldout"}
    kept = [p for p in prompts if p.split != "heldout" or prompt_key(p.text) not in trained]
    heldout = sum(p.split == "heldout" for p in prompts)
    removed = len(prompts) - len(kept)
    if heldout and removed == heldout:
        raise ArtifactError(f"all {heldout} held-out prompts are also SFT or seed prompts (same text after "
                            "normalising case, spaces and punctuation); nothing would be held out")
    return kept, removed


def load_sft(source: str, columns: dict, hub_split: str = "train",
             max_record_chars: int = MAX_RECORD_CHARS) -> tuple[list[SFTExample], dict]:
    records = read_records(source, hub_split, max_record_chars)
    check_mapping(records, columns)
    rows = map_sft(records, records.name, columns, records.locations)
    return validate_rows(rows, SFTExample, records.name, locations=records.locations), records.facts


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
    """All prompts (every split) and the SFT set for a run with `iterations` SI-MCTS rounds, and facts for the
    manifests: {"sft": {...}, "prompts": {..., "heldout_removed_duplicates": N}}.

    Held-out prompts whose text is also an SFT or seed prompt's are dropped (`drop_heldout_duplicates`).
    """
    if params.source == "builtin":
        world = generate_world(dataclasses.replace(params.world, iterations=iterations))
        prompts, sft, facts = world.prompts, world.sft, {"sft": {}, "prompts": {}}
    else:
        prompts, sft, facts = _files_dataset(params, iterations)
    prompts, removed = drop_heldout_duplicates(prompts, sft)
    facts["prompts"]["heldout_removed_duplicates"] = removed
    return prompts, sft, facts


def _files_dataset(params: DataParams, iterations: int) -> tuple[list[SeedPrompt], list[SFTExample], dict]:
    sft, sft_facts = load_sft(params.sft, params.sft_columns, params.split, params.max_record_chars)
    inputs = [load_prompts(params.prompts, params.prompt_columns, "prompts", hub_split=params.split,
                           max_record_chars=params.max_record_chars)]
    if params.heldout:
        inputs.append(load_prompts(params.heldout, params.prompt_columns, "heldout", "heldout", params.split,
                                   params.max_record_chars))
    check_unique_ids(inputs)
    prompts, records = inputs[0]
    facts = {"sft": sft_facts, "prompts": dict(records.facts)}
    if not params.heldout:
        return assign_splits(prompts, iterations, params.heldout_fraction, params.seed), sft, facts
    heldout, heldout_records = inputs[1]
    facts["prompts"].update({f"heldout_{key}": value for key, value in heldout_records.facts.items()})
    return assign_splits(prompts, iterations, 0.0, params.seed) + heldout, sft, facts
