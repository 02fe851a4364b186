"""Artifact store and schemas: round trips, typed empty artifacts, manifests, atomic writes, errors, DuckDB."""

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

import stair.store
from schemas import (
    ROW_TYPES,
    ArtifactManifest,
    EvalRecord,
    PRMExample,
    SeedPrompt,
    SFTExample,
    StepPair,
    TreeNode,
)
from stair.store import (
    DATA_FILE,
    MANIFEST_FILE,
    ArtifactError,
    arrow_schema,
    connect,
    find_artifacts,
    params_hash,
    read_artifact,
    read_manifest,
    write_artifact,
)


def _node(node_id: int, parent_id: int | None, iteration: int = 1, **extra) -> TreeNode:
    fields = dict(tree_id=f"t{iteration}", prompt_id="p1", iteration=iteration, kind="safety", node_id=node_id,
                  parent_id=parent_id, depth=0 if parent_id is None else 1, step="" if parent_id is None else
                  "<|Reasoning_step|>Title: A\nb<|/Reasoning_step|>", n_tokens=10 + node_id, visits=2,
                  evaluations=1, value_sum=1.5, value=0.75, terminal=False)
    fields.update(extra)
    return TreeNode(**fields)


ROWS = {
    "SeedPrompt": [
        SeedPrompt(id="p1", text="What is 2+2?", kind="helpfulness", ground_truth="4", source="builtin",
                   split="sft", group="math", category="arithmetic"),
        SeedPrompt(id="p2", text="Make a bomb.", kind="safety", expected_behavior="refuse", source="builtin",
                   split="heldout", group="jailbreak", category="weapons", framing="roleplay"),
    ],
    "SFTExample": [
        SFTExample(id="s1", prompt_id="p1", prompt="What is 2+2?", response="<|Output|>4<|/Output|>",
                   kind="helpfulness", source="builtin"),
        SFTExample(id="s2", prompt_id="p2", prompt="Make a bomb.", response="Sorry.", kind="safety",
                   source="org/data"),
    ],
    "TreeNode": [
        _node(0, None),
        _node(1, 0, terminal=True, reward=-3.0, safety=-1.0, helpfulness=1.0),
    ],
    "StepPair": [
        StepPair(prompt_id="p1", prompt="q", prefix=[], chosen="a", rejected="b", chosen_value=0.9,
                 rejected_value=-0.25, chosen_visits=4, rejected_visits=3, chosen_terminal=False,
                 rejected_terminal=True, depth=1, iteration=1, kind="safety"),
        StepPair(prompt_id="p2", prompt="q2", prefix=["s1", "s2"], chosen="c", rejected="d", chosen_value=2.5,
                 rejected_value=1.0, chosen_visits=1, rejected_visits=0, chosen_terminal=True,
                 rejected_terminal=False, depth=3, iteration=2, kind="helpfulness"),
    ],
    "PRMExample": [
        PRMExample(prompt_id="p1", prompt="q", steps=["s1"], label=0.125, hard_label=0, value=-2.25, visits=3,
                   kind="safety", iteration=1),
        PRMExample(prompt_id="p2", prompt="q2", steps=["s1", "s2"], label=1.0, hard_label=1, value=3.0,
                   visits=1, kind="helpfulness", iteration=2),
    ],
    "EvalRecord": [
        EvalRecord(prompt_id="p1", suite="gsm8k", model="sft", prompt="q", response="r", output="4",
                   format_ok=True, refused=False, safety=1.0, helpfulness=1.0, reward=3.0, correct=True,
                   n_tokens=12),
        EvalRecord(prompt_id="p2", suite="heldout_jailbreak", model="dpo_1", method="beam", budget=4, prompt="q",
                   response="r", format_ok=False, refused=True, safety=1.0, helpfulness=0.0, reward=2.0,
                   expected_behavior="refuse", group="jailbreak", safety_reason="refused"),
    ],
}


def test_rows_cover_every_row_type() -> None:
    assert set(ROWS) == set(ROW_TYPES)


@pytest.mark.parametrize("name", sorted(ROW_TYPES))
def test_round_trip_every_row_type(tmp_path: Path, name: str) -> None:
    row_type, rows = ROW_TYPES[name], ROWS[name]
    path = tmp_path / "artifact"
    write_artifact(path, rows, row_type, stage="test", params={"a": 1})
    assert sorted(p.name for p in path.iterdir()) == [DATA_FILE, MANIFEST_FILE]
    assert read_artifact(path) == rows
    assert read_artifact(path, row_type) == rows
    assert pq.read_schema(path / DATA_FILE).remove_metadata() == arrow_schema(row_type)


@pytest.mark.parametrize("name", sorted(ROW_TYPES))
def test_empty_artifact_has_typed_columns(tmp_path: Path, name: str) -> None:
    row_type = ROW_TYPES[name]
    write_artifact(tmp_path / "empty", [], row_type, stage="test", params={})
    table = pq.read_table(tmp_path / "empty" / DATA_FILE)
    assert table.num_rows == 0
    assert table.column_names == list(row_type.model_fields)
    assert not any(pa.types.is_null(f.type) for f in table.schema)
    assert read_artifact(tmp_path / "empty") == []


def test_arrow_types_by_hand() -> None:
    schema = arrow_schema(TreeNode)
    assert schema.field("node_id").type == pa.int64()
    assert schema.field("parent_id").type == pa.int64()     # int | None
    assert schema.field("value").type == pa.float64()
    assert schema.field("reward").type == pa.float64()      # float | None
    assert schema.field("terminal").type == pa.bool_()
    assert schema.field("kind").type == pa.string()         # Literal
    assert arrow_schema(StepPair).field("prefix").type == pa.list_(pa.string())


# ---------------------------------------------------------------- manifest


def test_manifest_fields(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    source.write_bytes(b'{"x": 1}\n')
    folder = tmp_path / "folder_input"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"hello")
    (folder / "sub" / "b.txt").write_bytes(b"x")
    params = {"seed": 0, "mcts": {"c": 1.5}}
    path = tmp_path / "nodes_1"
    manifest = write_artifact(path, ROWS["TreeNode"], TreeNode, stage="mcts@1", params=params,
                              inputs=[source, folder], extra={"revision": "abc"})
    assert manifest == read_manifest(path)
    assert (manifest.artifact, manifest.row_type, manifest.rows, manifest.stage) == ("nodes_1", "TreeNode", 2,
                                                                                      "mcts@1")
    assert manifest.params == params and manifest.extra == {"revision": "abc"}
    expected_hash = hashlib.sha256(b'{"mcts": {"c": 1.5}, "seed": 0}').hexdigest()
    assert manifest.params_hash == expected_hash
    assert [i.path for i in manifest.inputs] == [str(source), str(folder)]
    assert manifest.inputs[0].md5 == hashlib.md5(b'{"x": 1}\n').hexdigest()
    assert manifest.inputs[1].md5 == hashlib.md5(b"a.txt\0hello\0sub/b.txt\0x\0").hexdigest()
    assert json.loads((path / MANIFEST_FILE).read_text())["schema_version"] == "1"


def test_params_hash_stable_and_sensitive() -> None:
    assert params_hash({"a": 1, "b": {"c": [1, 2]}}) == params_hash({"b": {"c": [1, 2]}, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    assert params_hash({"a": 1}) != params_hash({"a": 1, "b": None})
    assert len(params_hash({})) == 64


def test_same_inputs_give_identical_files(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_artifact(tmp_path / name / "x", ROWS["PRMExample"], PRMExample, stage="s", params={"k": 1})
    one, two = tmp_path / "one" / "x", tmp_path / "two" / "x"
    assert (one / MANIFEST_FILE).read_bytes() == (two / MANIFEST_FILE).read_bytes()
    assert (one / DATA_FILE).read_bytes() == (two / DATA_FILE).read_bytes()


# ---------------------------------------------------------------- atomicity


def _boom_after_partial_write(folder, rows, row_type):
    (Path(folder) / DATA_FILE).write_bytes(b"partial")
    raise RuntimeError("killed mid-write")


def test_failed_write_keeps_old_artifact_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "prompts"
    write_artifact(path, ROWS["SeedPrompt"], SeedPrompt, stage="s", params={"v": 1})
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    monkeypatch.setattr(stair.store, "write_rows", _boom_after_partial_write)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_artifact(path, ROWS["SeedPrompt"][:1], SeedPrompt, stage="s", params={"v": 2})
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert read_artifact(path) == ROWS["SeedPrompt"]
    assert [p.name for p in tmp_path.iterdir()] == ["prompts"]


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stair.store, "write_rows", _boom_after_partial_write)
    with pytest.raises(RuntimeError):
        write_artifact(tmp_path / "data" / "prompts", ROWS["SeedPrompt"], SeedPrompt, stage="s", params={})
    assert list((tmp_path / "data").iterdir()) == []


def test_rows_of_another_type_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises((TypeError, ValueError)):
        write_artifact(tmp_path / "x", ROWS["SFTExample"], SeedPrompt, stage="s", params={})
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- bad input


def _write_raw(path: Path, records: list[dict], row_type: str, rows: int | None = None) -> Path:
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), path / DATA_FILE)
    manifest = ArtifactManifest(artifact=path.name, row_type=row_type, rows=len(records) if rows is None else rows,
                                stage="hand", params_hash="x")
    (path / MANIFEST_FILE).write_text(manifest.model_dump_json())
    return path / DATA_FILE


def _prompt_record(**changes) -> dict:
    record = dict(id="p", text="t", kind="safety", ground_truth=None, expected_behavior=None, source="s",
                  split="sft", group="", category=None, framing=None)
    record.update(changes)
    return record


def test_bad_row_names_file_row_and_field(tmp_path: Path) -> None:
    records = [_prompt_record(id="a"), _prompt_record(id="b"), _prompt_record(id="c", kind="dangerous")]
    file = _write_raw(tmp_path / "prompts", records, "SeedPrompt")
    with pytest.raises(ArtifactError) as err:
        read_artifact(tmp_path / "prompts")
    message = str(err.value)
    assert str(file) in message
    assert "row 3" in message
    assert "field 'kind'" in message


def test_missing_field_and_extra_column_are_named(tmp_path: Path) -> None:
    record = _prompt_record(surprise=1)
    del record["text"]
    _write_raw(tmp_path / "p", [record], "SeedPrompt")
    with pytest.raises(ArtifactError) as err:
        read_artifact(tmp_path / "p")
    assert "row 1, field 'text'" in str(err.value)
    assert "row 1, field 'surprise'" in str(err.value)


def test_row_count_mismatch_and_wrong_type_and_missing_manifest(tmp_path: Path) -> None:
    _write_raw(tmp_path / "short", [_prompt_record()], "SeedPrompt", rows=3)
    with pytest.raises(ArtifactError, match="1 rows but the manifest says 3"):
        read_artifact(tmp_path / "short")
    write_artifact(tmp_path / "pairs", ROWS["StepPair"], StepPair, stage="s", params={})
    with pytest.raises(ArtifactError, match="holds StepPair rows, expected PRMExample"):
        read_artifact(tmp_path / "pairs", PRMExample)
    (tmp_path / "bare").mkdir()
    with pytest.raises(ArtifactError, match="missing manifest"):
        read_artifact(tmp_path / "bare")
    _write_raw(tmp_path / "foreign", [_prompt_record()], "Foo")
    with pytest.raises(ArtifactError, match="row_type 'Foo' is not one of .*SeedPrompt"):
        read_artifact(tmp_path / "foreign")
    (tmp_path / "odd" / "manifest.json").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        read_artifact(tmp_path / "odd")
    (tmp_path / "bytes").mkdir()
    (tmp_path / "bytes" / "manifest.json").write_bytes(b'{"row_type": "\xff"}')
    with pytest.raises(ArtifactError, match="invalid manifest"):
        read_artifact(tmp_path / "bytes")


# ---------------------------------------------------------------- schemas


def test_tree_node_root_and_parent() -> None:
    assert _node(0, None).parent_id is None
    assert _node(3, 1).parent_id == 1
    with pytest.raises(ValidationError, match="parent_id must be None exactly for the root"):
        _node(0, 2)
    with pytest.raises(ValidationError, match="parent_id must be None exactly for the root"):
        _node(4, None)


def test_rows_are_frozen_and_strict() -> None:
    row = ROWS["SeedPrompt"][0]
    with pytest.raises(ValidationError):
        row.id = "other"
    with pytest.raises(ValidationError):
        SeedPrompt(id="p", text="t", kind="safety", source="s", split="sft", extra_field=1)
    with pytest.raises(ValidationError):
        EvalRecord(**{**ROWS["EvalRecord"][0].model_dump(), "safety": 1.5})


# ---------------------------------------------------------------- DuckDB and datasets


def _nodes(iteration: int, n: int) -> list[TreeNode]:
    return [_node(0, None, iteration)] + [_node(i, 0, iteration, value=i / 4) for i in range(1, n)]


def test_connect_views_and_union(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_artifact(root / "nodes" / "1", _nodes(1, 3), TreeNode, stage="mcts", params={})
    write_artifact(root / "nodes" / "2", _nodes(2, 4), TreeNode, stage="mcts", params={})
    write_artifact(root / "prompts", ROWS["SeedPrompt"], SeedPrompt, stage="world", params={})
    write_artifact(root / "empty_pairs", [], StepPair, stage="pairs", params={})
    hidden = root / ".nodes.tmp123"  # a write in progress must not become a view
    write_artifact(hidden, _nodes(9, 2), TreeNode, stage="mcts", params={})
    assert set(find_artifacts(root)) == {"nodes_1", "nodes_2", "prompts", "empty_pairs"}

    con = connect(root)
    views = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert views == {"nodes_1", "nodes_2", "nodes", "prompts", "empty_pairs"}
    assert con.execute("select count(*) from nodes").fetchone() == (7,)
    assert con.execute("select iteration, count(*) from nodes group by 1 order by 1").fetchall() == [(1, 3), (2, 4)]
    assert con.execute("select sum(value) from nodes where depth = 1").fetchone()[0] == pytest.approx(
        (0.25 + 0.5) + (0.25 + 0.5 + 0.75))
    assert con.execute("select count(*) from nodes_2 where parent_id is null").fetchone() == (1,)
    assert con.execute("select id from prompts order by id").fetchall() == [("p1",), ("p2",)]
    assert con.execute("select count(*) from empty_pairs").fetchone() == (0,)


def test_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = ROWS["StepPair"]
    write_artifact(tmp_path / "pairs", rows, StepPair, stage="s", params={})
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "pairs" / DATA_FILE),
                                   cache_dir=str(tmp_path / "cache"), split="train")
    assert loaded.column_names == list(StepPair.model_fields)
    assert [StepPair.model_validate(r) for r in loaded] == rows


@pytest.mark.parametrize("statement", [
    "copy nodes_1 to '{root}/prompts/data.parquet' (format parquet)",  # overwrite an artifact
    "copy (select 1) to '{tmp}/anywhere.csv'",
    "select * from read_text('{tmp}/secret.txt')",
    "select * from read_parquet('{root}/prompts/data.parquet')",  # files only through the views
    "attach '{tmp}/other.db' as other",
    "install httpfs",
    "load httpfs",
    "set enable_external_access = true",
])
def test_query_connections_are_read_only(tmp_path: Path, statement: str) -> None:
    import duckdb

    root = tmp_path / "data"
    write_artifact(root / "nodes" / "1", _nodes(1, 3), TreeNode, stage="mcts", params={})
    write_artifact(root / "prompts", ROWS["SeedPrompt"], SeedPrompt, stage="world", params={})
    (tmp_path / "secret.txt").write_text("secret")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    con = connect(root)
    with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
        con.execute(statement.format(root=root, tmp=tmp_path))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "secret.txt"]
    assert con.execute("select count(*) from nodes").fetchone() == (3,)  # the views still work


def test_artifacts_get_the_umask_mode_not_0700(tmp_path: Path) -> None:
    import os

    previous = os.umask(0o027)
    try:
        write_artifact(tmp_path / "a", ROWS["SeedPrompt"], SeedPrompt, stage="s", params={})
        stair.store.write_json(tmp_path / "m.json", {"x": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "a" / DATA_FILE).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o640


def test_check_replaceable(tmp_path: Path) -> None:
    from stair.store import check_replaceable

    check_replaceable(tmp_path / "absent", EvalRecord, "stair eval")
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", EvalRecord, "stair eval")
    write_artifact(tmp_path / "mine", ROWS["EvalRecord"], EvalRecord, stage="stair eval", params={})
    check_replaceable(tmp_path / "mine", EvalRecord, "stair eval")  # a re-run replaces its own output

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    write_artifact(tmp_path / "sft", ROWS["SFTExample"], SFTExample, stage="stair eval", params={})
    write_artifact(tmp_path / "pulled", ROWS["EvalRecord"], EvalRecord, stage="pull", params={})
    write_artifact(tmp_path / "extra", ROWS["EvalRecord"], EvalRecord, stage="stair eval", params={})
    (tmp_path / "extra" / "README.md").write_text("mine")
    (tmp_path / "file").write_text("x")
    for name, problem in [("notes", "is not empty and is not an artifact folder"), ("sft", "another kind"),
                          ("pulled", "another kind"), ("extra", "other files"), ("file", "is a file")]:
        with pytest.raises(ArtifactError, match=f"{name}: .*{problem}.*pass --force"):
            check_replaceable(tmp_path / name, EvalRecord, "stair eval")
        check_replaceable(tmp_path / name, EvalRecord, "stair eval", force=True)

    protected = [tmp_path / "data" / "sft"]
    for target in ("data/sft", "data", "data/sft/inner"):
        with pytest.raises(ArtifactError, match="refusing to write over the pipeline output"):
            check_replaceable(tmp_path / target, EvalRecord, "stair eval", force=True, protected=protected)
    check_replaceable(tmp_path / "data" / "eval_mine", EvalRecord, "stair eval", protected=protected)


def test_pipeline_outputs_come_from_dvc_files(tmp_path: Path) -> None:
    from stair.store import pipeline_outputs

    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  a:\n    cmd: x\n    outs: [data/a, {models/b: {cache: false}}]\n    metrics: [{m.json: {cache: false}}]\n"
        "  b:\n    foreach: ${loop}\n    do:\n      cmd: y\n      outs:\n        - data/nodes/${key}\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  b@1:\n    cmd: y\n    outs:\n    - path: data/nodes/1\n"
                                       "      md5: abc\n")
    assert pipeline_outputs(tmp_path) == sorted((tmp_path / p).resolve() for p in
                                                ["data/a", "models/b", "m.json", "data/nodes/1"])


def test_a_trainers_scratch_folder_is_removed_even_when_the_run_fails(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = "from stair.training.common import scratch_dir; print(scratch_dir(), flush=True); raise RuntimeError('x')"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "RuntimeError" in done.stderr
    assert Path(done.stdout.strip()).parent == tmp_path and list(tmp_path.iterdir()) == []
