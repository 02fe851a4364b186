"""Artifact store: validated parquet datasets with a manifest, written atomically, queryable with DuckDB.

An artifact is a folder `<name>/` holding `data.parquet` (loadable with
`datasets.load_dataset("parquet", data_files=...)`) and `manifest.json` (`schemas.ArtifactManifest`).
Writers build the folder under a temporary name beside the target and rename it into place, so a
killed stage never leaves a partial artifact.
"""

import hashlib
import json
import os
import shutil
import tempfile
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from schemas import ROW_TYPES, ArtifactManifest, InputRef
from stair.errors import ArtifactError

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"

Row = TypeVar("Row", bound=BaseModel)


def _arrow_type(annotation: object) -> pa.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if origin is Literal:
        return pa.string()
    if origin is list:
        return pa.list_(_arrow_type(typing.get_args(annotation)[0]))
    scalar = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    if annotation in scalar:
        return scalar[annotation]
    raise TypeError(f"no parquet type for field annotation {annotation!r}")


def arrow_schema(row_type: type[BaseModel]) -> pa.Schema:
    """The parquet schema of a row type, so even an empty artifact has typed columns."""
    return pa.schema(
        [pa.field(name, _arrow_type(f.annotation)) for name, f in row_type.model_fields.items()]
    )


def file_md5(path: Path) -> str:
    """md5 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    digest = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if path.is_dir():
            digest.update(b"\0")
    return digest.hexdigest()


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the artifact gets the mode any new folder would
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file (metrics, params) via a temp file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode any new file would
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, payload: object) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_rows(folder: Path, rows: Sequence[BaseModel], row_type: type[BaseModel]) -> None:
    """Write rows of one type as the folder's parquet file (no manifest; see `write_artifact`)."""
    table = pa.Table.from_pylist([r.model_dump() for r in rows], schema=arrow_schema(row_type))
    pq.write_table(table, Path(folder) / DATA_FILE)


def write_artifact(
    path: Path,
    rows: Sequence[BaseModel],
    row_type: type[BaseModel],
    *,
    stage: str,
    params: dict,
    inputs: Iterable[Path] = (),
    extra: dict | None = None,
) -> ArtifactManifest:
    """Write an artifact folder (parquet + manifest) atomically and return its manifest."""
    path = Path(path)
    wrong = next((i for i, r in enumerate(rows) if not isinstance(r, row_type)), None)
    if wrong is not None:
        raise TypeError(f"{path}: row {wrong} is a {type(rows[wrong]).__name__}, not a {row_type.__name__}")
    manifest = ArtifactManifest(
        artifact=path.name,
        row_type=row_type.__name__,
        rows=len(rows),
        stage=stage,
        params_hash=params_hash(params),
        params=params,
        inputs=[InputRef(path=str(p), md5=file_md5(Path(p))) for p in inputs],
        extra=extra or {},
    )
    with atomic_dir(path) as tmp:
        write_rows(tmp, rows, row_type)
        (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(path: Path) -> ArtifactManifest:
    file = Path(path) / MANIFEST_FILE
    try:
        manifest = ArtifactManifest.model_validate_json(file.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing manifest; is {path} an artifact folder?") from None
    except OSError as err:
        raise ArtifactError(f"{file}: unreadable manifest ({err.strerror or err})") from None
    except ValidationError as err:
        raise ArtifactError(f"{file}: invalid manifest: {err}") from None
    if manifest.row_type not in ROW_TYPES:
        raise ArtifactError(f"{file}: row_type {manifest.row_type!r} is not one of {', '.join(sorted(ROW_TYPES))}")
    return manifest


def describe_error(err: ValidationError, source: str, row: int | str) -> str:
    """One line per problem: 'file, row N, field F: message' (`row` may be a label such as 'line 7')."""
    where = f"row {row}" if isinstance(row, int) else row
    lines = []
    for problem in err.errors():
        field = ".".join(str(p) for p in problem["loc"]) or "<row>"
        lines.append(f"{source}, {where}, field '{field}': {problem['msg']}")
    return "\n".join(lines)


def validate_rows(records: Iterable[dict], row_type: type[Row], source: str, first_row: int = 1,
                  locations: Sequence[str] | None = None) -> list[Row]:
    """Validate dict records into rows; the first bad one raises ArtifactError naming source, row, field.

    Rows are numbered from `first_row` unless `locations` gives each record's place in its file
    ('line 7', 'row 3'). A row type with a `unique_key` also refuses a value seen in an earlier row.
    """
    rows: list[Row] = []
    seen: dict[object, str] = {}
    for index, record in enumerate(records):
        where = locations[index] if locations is not None else f"row {index + first_row}"
        try:
            row = row_type.model_validate(record)
        except ValidationError as err:
            raise ArtifactError(describe_error(err, source, where)) from None
        unique = getattr(row_type, "unique_key", None)
        if unique:
            key = getattr(row, unique)
            if key in seen:
                raise ArtifactError(f"{source}, {where}, field '{unique}': duplicate value {key!r} (first at {seen[key]})")
            seen[key] = where
        rows.append(row)
    return rows


def read_artifact(path: Path, row_type: type[Row] | None = None) -> list[Row]:
    """Read and validate an artifact's rows (row type from the manifest unless given)."""
    path = Path(path)
    manifest = read_manifest(path)
    row_type = row_type or ROW_TYPES[manifest.row_type]
    if manifest.row_type != row_type.__name__:
        raise ArtifactError(f"{path}: holds {manifest.row_type} rows, expected {row_type.__name__}")
    file = path / DATA_FILE
    try:
        records = pq.read_table(file).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise ArtifactError(f"{file}: not a readable parquet file ({err})") from None
    if len(records) != manifest.rows:
        raise ArtifactError(f"{file}: {len(records)} rows but the manifest says {manifest.rows}")
    return validate_rows(records, row_type, str(file))


def pipeline_outputs(root: Path = Path(".")) -> list[Path]:
    """Every path the DVC pipeline at `root` writes: outs, metrics and plots of dvc.lock, and of dvc.yaml
    where written without templates (a `foreach` stage's paths are known once it has run, from dvc.lock)."""
    import yaml

    paths = []
    for name in ("dvc.lock", "dvc.yaml"):
        file = Path(root) / name
        if not file.is_file():
            continue
        for stage in (yaml.safe_load(file.read_text()) or {}).get("stages", {}).values():
            stage = stage.get("do", stage)
            for kind in ("outs", "metrics", "plots"):
                for entry in stage.get(kind) or []:
                    # dvc.lock: {path: ..., md5: ...}; dvc.yaml: a path, or {path: {options}}
                    if isinstance(entry, dict):
                        entry = entry["path"] if "path" in entry else next(iter(entry))
                    path = str(entry)
                    if "${" not in path:
                        paths.append((Path(root) / path).resolve())
    return sorted(set(paths))


def check_replaceable(path: Path, row_type: type[BaseModel] | None, stage: str, force: bool = False,
                      protected: Iterable[Path] = ()) -> None:
    """Refuse (ArtifactError) to replace `path` with a new artifact unless that destroys nothing it should not.

    Never inside, around or at a `protected` path (the pipeline's outputs). Otherwise an absent or empty
    folder, or an artifact this `stage` wrote with the same row type (any, if None) and nothing else in
    it, may be replaced; anything else only with `force`.
    """
    target = Path(path).resolve()
    for out in protected:
        out = Path(out).resolve()
        if target == out or out.is_relative_to(target) or target.is_relative_to(out):
            raise ArtifactError(f"{path}: refusing to write over the pipeline output {out} (pick another folder)")
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if force:
        return
    problem = "is a file"
    if target.is_dir():
        manifest = target / MANIFEST_FILE
        try:
            current = ArtifactManifest.model_validate_json(manifest.read_text())
        except (OSError, ValidationError):
            current = None
        if current is None:
            problem = "is not empty and is not an artifact folder"
        elif current.stage != stage or (row_type is not None and current.row_type != row_type.__name__):
            problem = f"holds another kind of artifact ({current.row_type} rows from {current.stage!r})"
        elif {p.name for p in target.iterdir()} - {DATA_FILE, MANIFEST_FILE}:
            problem = "holds other files besides its artifact"
        else:
            return
    raise ArtifactError(f"{path}: {problem}; refusing to replace it (pass --force to overwrite)")


def find_artifacts(root: Path) -> dict[str, Path]:
    """Artifact folders under `root` by view name (folder path below root, '/' replaced by '_')."""
    root = Path(root)
    found = {}
    for manifest in sorted(root.rglob(MANIFEST_FILE)):
        folder = manifest.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # a temporary folder of a write in progress
        name = "_".join(folder.relative_to(root).parts)
        found[name] = folder
    return found


def connect(root: Path = Path("data")):
    """A read-only in-memory DuckDB connection with one view per artifact under `root`.

    data/nodes/1 becomes view `nodes_1`; artifacts that share a parent folder are also unioned into a
    view named after it (`nodes` over every iteration, `heldout` over every model), since each row
    carries its own iteration or model. Each view is an Arrow dataset scanned lazily; then external
    access is switched off and the configuration locked, so no statement can write a file, attach a
    database, install an extension or read any other file (DuckDB's own guard, not a check of the SQL).
    """
    import duckdb
    import pyarrow.dataset as ds

    con = duckdb.connect()
    artifacts = find_artifacts(root)
    groups: dict[str, list[Path]] = {}
    for name, folder in artifacts.items():
        con.register(name, ds.dataset(folder / DATA_FILE, format="parquet"))
        parent = "_".join(folder.relative_to(root).parts[:-1])
        if parent:
            groups.setdefault(parent, []).append(folder / DATA_FILE)
    for parent, files in groups.items():
        if parent not in artifacts:
            schema = pa.unify_schemas([pq.read_schema(f) for f in files])
            con.register(parent, ds.dataset([str(f) for f in files], schema=schema, format="parquet"))
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
