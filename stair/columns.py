"""Column mapping: raw records (any layout) -> the fields of `SeedPrompt` and `SFTExample` rows.

A mapping names the column of a field (`text=question`); without one, the common names below are
tried in order. Used by the data stage (`stair.data`), the evaluation suites and the Hub reader
(`stair.hub.pull`); the caller validates the mapped fields as rows.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from stair.errors import ArtifactError

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


class NamedRecords(Protocol):
    """Records read from one input, with its name for messages (`stair.data.Records`)."""

    name: str

    def __iter__(self) -> Iterator[dict]: ...


def _column(record: dict, field_name: str, mapping: dict, defaults: dict) -> tuple[str, object]:
    """(column name, value) of `field_name`: the mapped column, else the first common name with a value.
    A value of "" (an empty CSV cell) is no value."""
    if field_name in mapping:
        value = record.get(mapping[field_name])
        return mapping[field_name], None if value == "" else value
    for name in defaults.get(field_name, ()):
        if name in record and record[name] not in ("", None):
            return name, record[name]
    return defaults.get(field_name, (field_name,))[0], None


def check_fields(mapping: dict, fields: dict, what: str) -> None:
    """Raise ValueError unless `mapping` maps names of `fields` (SFT_COLUMNS or PROMPT_COLUMNS) to column names."""
    for field_name, column in mapping.items():
        if field_name not in fields:
            raise ValueError(f"{what}: {field_name!r} is not a field; fields: {', '.join(fields)}")
        if not isinstance(column, str) or not column:
            raise ValueError(f"{what}: {field_name} should name a column, got {column!r}")


def check_mapping(records: NamedRecords, mapping: dict) -> None:
    """A mapped column that no record has is a typo, not a column of missing values."""
    present = {key for record in records for key in record}
    for field_name, column in mapping.items():
        if column not in present:
            raise ArtifactError(f"{records.name}, field '{column}': no record has this column (mapped to "
                                f"{field_name}); columns: {', '.join(sorted(map(str, present)))}")


def _required_text(record: dict, field_name: str, mapping: dict, defaults: dict, where: str) -> str:
    column, value = _column(record, field_name, mapping, defaults)
    if value is None or (isinstance(value, str) and not value.strip()):
        state = "blank" if isinstance(value, str) else "missing"
        raise ArtifactError(f"{where}, field '{column}': {state} (it holds the {field_name}; map another column "
                            f"with {field_name}=<column>)")
    if not isinstance(value, str):
        raise ArtifactError(f"{where}, field '{column}': expected text, got {type(value).__name__}")
    return value


def map_prompts(records: list[dict], source: str, columns: dict, split: str = "",
                locations: list[str] | None = None, id_prefix: str = "") -> list[dict]:
    """Records -> SeedPrompt fields (validated by the caller). Safety prompts default to 'refuse', others to 'comply'.

    A record without an id gets '<id_prefix>-<row>' (`id_prefix` defaults to the file's stem). A missing or
    blank prompt text, a mapped column the file lacks, or an id used twice raises ArtifactError.
    """
    mapped, first_seen = [], {}
    for index, record in enumerate(records, start=1):
        where = f"{source}, {locations[index - 1] if locations else f'row {index}'}"
        values = {name: _column(record, name, columns, PROMPT_COLUMNS)[1]
                  for name in ("kind", "ground_truth", "expected_behavior", "category")}
        kind = str(values["kind"] or "helpfulness").strip().lower()
        truth = values["ground_truth"]
        id_column, given_id = _column(record, "id", columns, PROMPT_COLUMNS)
        if given_id is not None:
            if str(given_id) in first_seen:
                raise ArtifactError(f"{where}, field '{id_column}': duplicate id {str(given_id)!r} "
                                    f"(first at {first_seen[str(given_id)]})")
            first_seen[str(given_id)] = where.removeprefix(f"{source}, ")
        mapped.append({
            "id": str(given_id if given_id is not None else f"{id_prefix or Path(source).stem}-{index:06d}"),
            "text": _required_text(record, "text", columns, PROMPT_COLUMNS, where),
            "kind": kind,
            "ground_truth": None if truth is None else str(truth),
            "expected_behavior": values["expected_behavior"] or ("refuse" if kind == "safety" else "comply"),
            "source": source,
            "split": split or "unassigned",
            "group": "harmful" if kind == "safety" else "task",
            "category": values["category"],
        })
    return mapped



def map_sft(records: list[dict], source: str, columns: dict, locations: list[str] | None = None) -> list[dict]:
    """Records (STAIR-SFT layout or mapped columns) -> SFTExample fields (validated by the caller)."""
    mapped = []
    for index, record in enumerate(records, start=1):
        where = f"{source}, {locations[index - 1] if locations else f'row {index}'}"
        kind_column = columns.get("kind")
        kind = record.get(kind_column) if kind_column else record.get("type") or record.get("kind")
        mapped.append({
            "id": f"sft-{index:06d}", "prompt_id": f"sft-{index:06d}",
            "prompt": _required_text(record, "prompt", columns, SFT_COLUMNS, where),
            "response": _required_text(record, "response", columns, SFT_COLUMNS, where),
            "kind": str(kind or "helpfulness").strip().lower(),
            "source": source,
        })
    return mapped

