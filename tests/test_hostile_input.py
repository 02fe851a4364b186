"""A corpus of malformed input files, in every format, through the data stage and `stair eval`.

Each case must fail with one message naming the file, the line (row for parquet) and the field, before
any artifact changes; a few cases are handled as documented instead (a BOM is dropped).
"""

import json
import math
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from stair.cli import main as stair
from stair.format import render_output, render_step
from stair.store import file_md5
from tests.fakes import save_tiny_model
from tests.project import stage_argv

GOOD = {"id": "p1", "question": "How do I bake bread?", "type": "helpfulness", "ground_truth": 4.5}
FORMATS = ["jsonl", "json", "csv", "parquet"]


def _rows(*changes: dict) -> list[dict]:
    """A good first record, then one record per change (each a variant of GOOD)."""
    return [GOOD] + [{**GOOD, "id": f"p{i}", **change} for i, change in enumerate(changes, start=2)]


def _write(path: Path, fmt: str, rows: list[dict], blank_lines: int = 0) -> None:
    """`rows` in format `fmt`, one record per line after `blank_lines` blank lines (after the CSV header)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    lines = [json.dumps(r) if fmt != "csv" else ",".join(_cell(r.get(c)) for c in columns) for r in rows]
    pad = [""] * blank_lines
    if fmt == "jsonl":
        text = "\n".join(pad + lines)
    elif fmt == "json":
        text = "\n".join(["["] + pad + [line + ("," if i < len(lines) - 1 else "") for i, line in enumerate(lines)]
                         + ["]"])
    else:
        text = "\n".join([",".join(columns)] + pad + lines)
    path.write_text(text + "\n")


def _cell(value) -> str:
    return "" if value is None else '"' + str(value).replace('"', '""') + '"'


def _first_line(fmt: str, blank_lines: int = 0) -> int:
    """Where the first record is: the line (text formats, after a header or '[') or the parquet row."""
    return {"jsonl": 1, "json": 2, "csv": 2, "parquet": 1}[fmt] + (0 if fmt == "parquet" else blank_lines)


def _located(fmt: str, index: int, blank_lines: int = 0) -> str:
    return f"{'row' if fmt == 'parquet' else 'line'} {_first_line(fmt, blank_lines) + index}"


# name -> (records, index of the bad record, field the message names, formats it applies to)
RECORD_CASES = {
    "duplicate id": (_rows({"id": "p1"}), 1, "id", FORMATS),
    "whitespace-only prompt": (_rows({"question": "  \t "}), 1, "question", FORMATS),
    "missing prompt": (_rows({"question": None}), 1, "question", FORMATS),
    "NaN ground truth": (_rows({"ground_truth": math.nan}), 1, "ground_truth", ["jsonl", "json", "parquet"]),
    "infinite number": (_rows({"ground_truth": math.inf}), 1, "ground_truth", ["jsonl", "json", "parquet"]),
    "oversized prompt": (_rows({"question": "x" * 150_000}), 1, "question", FORMATS),
    "bad kind": (_rows({"type": "banana"}), 1, "kind", FORMATS),
}
CASES = [(name, fmt) for name, (_, _, _, formats) in RECORD_CASES.items() for fmt in formats]


def _raw_cases() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file suffix, bytes, what the message must hold besides the file name)."""
    return {
        "non-UTF-8 bytes in a prompt (jsonl)": (
            "jsonl", json.dumps(GOOD).encode() + b'\n{"id": "p2", "question": "caf\xe9?"}\n',
            "line 2, field 'question': not valid UTF-8 (byte 0xe9)"),
        "non-UTF-8 bytes in a prompt (csv)": (
            "csv", b"id,question\np1,fine\n\np2,caf\xe9\n", "line 4, field 'question': not valid UTF-8"),
        "non-UTF-8 bytes in a prompt (json)": (
            "json", b'[\n {"id": "p1", "question": "ok"},\n {"id": "p2", "question": "\xff"}\n]\n',
            "line 3, field 'question': not valid UTF-8 (byte 0xff)"),
        "unclosed quote (csv)": (
            "csv", b'id,question\np1,"How do I bake bread?\np2,What is 2 + 2?\n', "line 2: malformed CSV"),
        "quote closed mid-field (csv)": (
            "csv", b'id,question\np1,"How do I"x bake bread?\n', "line 2: malformed CSV"),
        "ragged row (csv)": ("csv", b"id,question\np1,How?\np2,What,extra\n", "line 3: 3 fields where the header has 2"),
        "empty file (jsonl)": ("jsonl", b"", "no records"),
        "blank lines only (jsonl)": ("jsonl", b"\n \n\n", "no records"),
        "header only (csv)": ("csv", b"id,question\n", "no records"),
        "empty list (json)": ("json", b"[]", "no records"),
        "not JSON (jsonl, after a blank line)": ("jsonl", json.dumps(GOOD).encode() + b"\n\n{oops\n",
                                                 "line 3: not valid JSON"),
        "not JSON (json)": ("json", b'[\n {"id": "p1",\n  "question": }\n]', "line 3: not valid JSON"),
        "a record that is not an object (jsonl)": ("jsonl", b'["How?"]\n', "line 1: expected an object, got list"),
        "nested too deeply (jsonl)": ("jsonl", json.dumps(GOOD).encode() + b"\n" + b"[" * 5000 + b"]" * 5000 + b"\n",
                                      "line 2: JSON nested too deeply"),
        "nested too deeply (json)": ("json", b"[" * 5000 + b"]" * 5000, "JSON nested too deeply"),
        "a repeated data key: the last one counts (json)": (
            "json", b'{"data": 5,\n "data": [\n {"id": "p1", "question": "ok"},\n {"id": "p2"}\n]}',
            "line 4, field 'question'"),
        "truncated parquet": ("parquet", None, "not a readable parquet file"),
        "not parquet at all": ("parquet", b"PAR1 this is not parquet", "not a readable parquet file"),
    }


RAW = _raw_cases()


def _case_file(folder: Path, name: str, fmt: str | None = None) -> tuple[Path, str]:
    """Write case `name` into `folder`; returns the file and the location text its message must hold."""
    if name in RECORD_CASES:
        rows, index, field, _ = RECORD_CASES[name]
        file = folder / f"prompts.{fmt}"
        _write(file, fmt, rows, blank_lines=1 if fmt in ("jsonl", "csv") else 0)
        return file, f"{_located(fmt, index, 1 if fmt in ('jsonl', 'csv') else 0)}, field '{field}'"
    suffix, content, expected = RAW[name]
    file = folder / f"prompts.{suffix}"
    if content is None:  # a real parquet file, cut in half
        _write(file, "parquet", _rows({}, {}))
        content = file.read_bytes()[: file.stat().st_size // 2]
    file.write_bytes(content)
    return file, expected


ALL_CASES = [pytest.param(name, fmt, id=f"{name} ({fmt})") for name, fmt in CASES] + [
    pytest.param(name, None, id=name) for name in RAW]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [render_step("Plan", "Think.") + render_output("Done."),
                                                              "How do I bake bread?"])


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project folder with a valid SFT file and a previous data stage's artifacts (to check nothing changes)."""
    from schemas import SeedPrompt, SFTExample
    from stair.store import write_artifact

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/inputs").mkdir(parents=True)  # where the data stage takes local files from
    (tmp_path / "data/inputs/sft.jsonl").write_text(json.dumps({"prompt": "Hi?", "response": render_output("Hello.")}) + "\n")
    write_artifact(tmp_path / "data/prompts", [SeedPrompt(id="old", text="Old?", kind="safety", source="s",
                                                          split="iter_1")], SeedPrompt, stage="data", params={})
    write_artifact(tmp_path / "data/sft", [SFTExample(id="old", prompt_id="old", prompt="Old?", response="Old.",
                                                      kind="safety", source="s")], SFTExample, stage="data", params={})
    return tmp_path


def _run_data_stage(project: Path, prompts: Path, capsys) -> tuple[int, str]:
    import stages.data

    params = {"loop": {"1": {"policy": "models/sft", "out": "models/dpo/1"}},
              "data": {"source": "files", "sft": "data/inputs/sft.jsonl", "prompts": str(prompts), "heldout_fraction": 0.5}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["data", *stage_argv("data")])
        stages.data.main()
        raise SystemExit(0)
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name, fmt", ALL_CASES)
def test_the_data_stage_refuses_bad_input_and_changes_nothing(project: Path, capsys, name: str, fmt) -> None:
    file, expected = _case_file(project / "data/inputs", name, fmt)
    before = {p: file_md5(project / p) for p in ("data/prompts", "data/sft")}
    code, err = _run_data_stage(project, file.relative_to(project), capsys)
    assert code == 1
    assert err.startswith(f"error: {file.relative_to(project)}") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line, no traceback
    assert {p: file_md5(project / p) for p in before} == before
    assert not list((project / "data").glob(".*"))  # no temporary folder left behind


@pytest.mark.parametrize("name, fmt", ALL_CASES)
def test_stair_eval_refuses_bad_input_and_writes_nothing(project: Path, tiny: Path, capsys, name: str, fmt) -> None:
    file, expected = _case_file(project, name, fmt)
    code = stair(["eval", "--model", str(tiny), "--suite", "mine", "--path", str(file), "--out", "records"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {file}") and expected in err, err
    assert not (project / "records").exists()


def test_a_size_limit_is_configurable(project: Path, tiny: Path, capsys) -> None:
    file = project / "prompts.jsonl"
    _write(file, "jsonl", _rows({"question": "x" * 500}))
    assert stair(["eval", "--model", str(tiny), "--suite", "mine", "--path", str(file), "--max-chars", "400"]) == 1
    assert "line 2, field 'question': 500 characters" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_a_bom_is_dropped(project: Path, capsys, fmt: str) -> None:
    file = project / f"data/inputs/prompts.{fmt}"
    _write(file, fmt, _rows(*({"question": f"Question {i}?"} for i in (2, 3, 4))))  # distinct: none is dropped
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    code, err = _run_data_stage(project, file.relative_to(project), capsys)
    assert code == 0, err
    from schemas import SeedPrompt
    from stair.store import read_artifact

    assert sorted(p.id for p in read_artifact(project / "data/prompts", SeedPrompt)) == ["p1", "p2", "p3", "p4"]


def test_a_multi_line_quoted_csv_field_is_one_record_and_lines_count_from_the_file(project: Path, capsys) -> None:
    file = project / "data/inputs/prompts.csv"
    file.write_bytes(b'id,question\np1,"How do I\nbake bread?"\n\np2,"  "\n')
    code, err = _run_data_stage(project, file.relative_to(project), capsys)
    assert code == 1 and "data/inputs/prompts.csv, line 5, field 'question': blank" in err, err


def test_stair_eval_model_and_limit_errors_are_one_line(project: Path, tiny: Path, capsys) -> None:
    file = project / "prompts.jsonl"
    _write(file, "jsonl", _rows({}))
    assert stair(["eval", "--model", "no/such/model", "--suite", "mine", "--path", str(file)]) == 1
    assert "no/such/model: no such model folder (the Hub is offline" in capsys.readouterr().err
    assert stair(["eval", "--model", str(tiny), "--suite", "mine", "--path", "hub:org/data"]) == 1
    assert "hub:org/data is configured but the Hugging Face Hub is offline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        stair(["eval", "--model", str(tiny), "--suite", "mine", "--path", str(file), "--limit", "-1"])
    assert "-1 must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError):  # --debug: the traceback, for a developer
        stair(["--debug", "eval", "--model", "no/such/model", "--suite", "mine", "--path", str(file)])
