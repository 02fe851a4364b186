"""Reading Hub datasets and published folders as validated `schemas` rows.

Two Hub readers, side by side below, share the one path that fails at once in offline mode,
resolves the revision to a commit sha and redacts the token from errors (`resolve_revision`):
- `_hub_snapshot` (for `pull_dataset`, `pull_to_artifact`, `load_rows`) downloads the card, then
  only the files of the config; parquet files the card lists are read directly, anything else with
  `datasets` on the downloaded folder. A published folder on disk is read the same way, offline.
  STAIR's published layouts (STAIR-SFT, STAIR-Prompts) are mapped onto the row types (`stair.columns`).
- `load_hub_records` (for the data stage's `hub:` inputs, which `stair.data` checks and maps itself)
  reads any Hub dataset with `datasets.load_dataset`, whatever its layout.
"""

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from schemas import ROW_TYPES, SeedPrompt, SFTExample
from stair.columns import map_prompts, map_sft
from stair.errors import ArtifactError
from stair.hub.cards import CARD_FILE, CONFIG_ROW_TYPES, config_base, read_card_metadata
from stair.hub.refs import HubRef, LocalRef, call_hub, check_online, endpoint_url, parse_source, resolve_token
from stair.store import MANIFEST_FILE, read_artifact, read_manifest, validate_rows, write_artifact


def _card_data_files(folder: Path, split: str) -> dict[str, list[str]]:
    """Config name -> data file patterns of `split`, from the card's `configs:` ({} when the card has none)."""
    configs = {}
    for entry in read_card_metadata(folder).get("configs") or []:
        files = entry.get("data_files", [])
        if isinstance(files, (str, dict)):
            files = [files]
        if files and all(isinstance(f, dict) and "split" in f for f in files):
            files = [f["path"] for f in files if f["split"] == split]
        patterns = []
        for item in files:
            paths = item["path"] if isinstance(item, dict) else item
            patterns += [paths] if isinstance(paths, str) else list(paths)
        configs[entry.get("config_name", "default")] = patterns
    return configs


def _pick_config(configs: dict, config: str | None, where: str) -> str:
    if config is None:
        if len(configs) != 1:
            raise ArtifactError(f"{where}: several configs ({', '.join(configs)}); name one as <source>:<config>")
        return next(iter(configs))
    if config not in configs:
        raise ArtifactError(f"{where}: no config {config!r}; configs: {', '.join(configs) or '(none)'}")
    return config


def _folder_records(folder: Path, config: str | None, split: str) -> tuple[list[dict], list[str], str | None]:
    """Records, column names and config of a published folder (parquet read directly; else via `datasets`)."""
    configs = _card_data_files(folder, split)
    if configs:
        config = _pick_config(configs, config, str(folder))
        files = sorted({f for pattern in configs[config] for f in folder.glob(pattern) if f.is_file()})
        if not files:
            raise ArtifactError(f"{folder}: config {config!r} has no {split!r} data files ({configs[config]})")
        if all(f.suffix == ".parquet" for f in files):
            table = pa.concat_tables([_read_parquet(f) for f in files], promote_options="default")
            if not table.num_rows:
                raise ArtifactError(f"{folder}: config {config!r} has no rows (an empty input is not a dataset)")
            return table.to_pylist(), table.column_names, config
    from datasets import load_dataset

    dataset = load_dataset(str(folder), config, split=split)
    return dataset.to_list(), list(dataset.column_names), config


def _read_parquet(file: Path) -> pa.Table:
    try:
        return pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise ArtifactError(f"{file}: not a readable parquet file ({err})") from None


def _own_layout(columns: Iterable[str], row_type: type[BaseModel]) -> bool:
    columns = set(columns)
    required = {name for name, f in row_type.model_fields.items() if f.is_required()}
    return required <= columns <= set(row_type.model_fields)


def infer_row_type(columns: Iterable[str], config: str | None, name: str) -> type[BaseModel]:
    """Row type whose fields are exactly `columns`, else by config name, else by a 'sft'/'prompt' repo name."""
    columns = set(columns)
    for row_type in ROW_TYPES.values():
        if columns == set(row_type.model_fields):
            return row_type
    if config and config_base(config)[0] in CONFIG_ROW_TYPES:
        return CONFIG_ROW_TYPES[config_base(config)[0]]
    lowered = f"{name} {config or ''}".lower()
    if "sft" in lowered:
        return SFTExample
    if "prompt" in lowered:
        return SeedPrompt
    raise ArtifactError(f"{name}: can't tell the row type of columns {sorted(columns)}; pass one of {', '.join(ROW_TYPES)}")


def to_rows(records: list[dict], columns: Iterable[str], row_type: type[BaseModel], source: str) -> list:
    """Validate records as `row_type` rows, mapping STAIR-SFT / STAIR-Prompts layouts first when the columns differ."""
    if not _own_layout(columns, row_type):
        if row_type is SeedPrompt:
            records = map_prompts(records, source, {})
        elif row_type is SFTExample:
            records = map_sft(records, source, {})
    return validate_rows(records, row_type, source)


def resolve_revision(ref: HubRef, token: str | None, endpoint: str | None) -> str:
    """The commit sha `ref.revision` names (the manifest records it), after failing at once in offline mode
    (instead of a long network timeout). A failed call raises HubError with the token redacted."""
    from huggingface_hub import HfApi

    check_online(ref)
    api = HfApi(endpoint=endpoint_url(endpoint), token=token)
    return call_hub(token, f"resolving {ref}", api.dataset_info, ref.repo_id, revision=ref.revision).sha


def _hub_snapshot(ref: HubRef, split: str, token: str | None, endpoint: str | None,
                  cache_dir: Path | None) -> tuple[Path, str]:
    """Download the card, then only the files of the config (everything if the card lists no configs)."""
    from huggingface_hub import snapshot_download

    sha = resolve_revision(ref, token, endpoint)
    endpoint = endpoint_url(endpoint)

    def download(patterns: list[str] | None) -> Path:
        return Path(call_hub(token, f"downloading {ref}", snapshot_download, ref.repo_id, repo_type="dataset",
                             revision=sha, allow_patterns=patterns, token=token, endpoint=endpoint,
                             cache_dir=None if cache_dir is None else str(cache_dir)))

    folder = download([CARD_FILE])
    configs = _card_data_files(folder, split) if folder.is_dir() else {}
    patterns = configs[_pick_config(configs, ref.config, str(ref))] if configs else None
    return download(patterns and [CARD_FILE, *patterns]), sha


def load_hub_records(ref: HubRef, split: str = "train") -> tuple[list[dict], str | None]:
    """All rows of one split of a Hub dataset (any layout, via `datasets`), and the resolved commit (for the manifest).

    The data stage's reader: an arbitrary Hub dataset need not be parquet under a card that lists its
    configs, which is all `pull_dataset` reads directly. Fails at once when offline mode is on.
    """
    token = resolve_token()
    revision = resolve_revision(ref, token, None)
    from datasets import load_dataset

    dataset = call_hub(token, f"loading {ref}", load_dataset, ref.repo_id, ref.config, split=split, revision=revision,
                       token=token)
    return dataset.to_list(), revision


def _pull(source: "str | Path | HubRef | LocalRef", row_type: type[BaseModel] | None, split: str,
          token: str | None, endpoint: str | None, cache_dir: Path | None) -> tuple[list, type, str | None, str]:
    ref = parse_source(source)
    if isinstance(ref, LocalRef):
        if (ref.folder / MANIFEST_FILE).is_file() and not ref.config:  # an artifact folder
            row_type = row_type or ROW_TYPES[read_manifest(ref.folder).row_type]
            return read_artifact(ref.folder, row_type), row_type, None, str(ref)
        records, columns, config = _folder_records(ref.folder, ref.config, split)
        name, revision = str(LocalRef(ref.folder, config)), None
    else:
        token = resolve_token(token)
        folder, revision = _hub_snapshot(ref, split, token, endpoint, cache_dir)
        records, columns, config = _folder_records(folder, ref.config, split)
        name = str(HubRef(ref.repo_id, config, revision))
    row_type = row_type or infer_row_type(columns, config, name)
    return to_rows(records, columns, row_type, name), row_type, revision, name


def pull_dataset(ref: "HubRef | LocalRef | str | Path", row_type: type[BaseModel] | None = None, *,
                 split: str = "train", token: str | None = None, endpoint: str | None = None,
                 cache_dir: Path | None = None) -> tuple[list, str | None]:
    """Validated rows of one config of a Hub dataset (or a published folder) and the resolved commit sha.

    `ref` is 'hub:<repo>[:<config>][@<revision>]', a HubRef, or '<folder>[:<config>]' (revision None).
    A bad row raises ArtifactError naming repo, config, commit, row and field.
    """
    rows, _, revision, _ = _pull(ref, row_type, split, token, endpoint, cache_dir)
    return rows, revision


def pull_to_artifact(ref: "HubRef | LocalRef | str | Path", out_dir: Path, row_type: type[BaseModel] | None = None,
                     *, split: str = "train", token: str | None = None, endpoint: str | None = None,
                     cache_dir: Path | None = None):
    """`stair pull`: write one pulled config as an artifact folder; the manifest records the resolved revision."""
    parsed = parse_source(ref)
    rows, row_type, revision, name = _pull(parsed, row_type, split, token, endpoint, cache_dir)
    extra = {"source": name, "split": split, "hub_revision": revision}
    if isinstance(parsed, HubRef):
        extra.update(hub_repo=parsed.repo_id, config=parsed.config, requested_revision=parsed.revision)
    return write_artifact(Path(out_dir), rows, row_type, stage="pull", params={"source": str(parsed), "split": split},
                          extra=extra)


def load_rows(source: str, row_type: type[BaseModel], default: Path | None = None, *, split: str = "train",
              token: str | None = None, endpoint: str | None = None,
              cache_dir: Path | None = None) -> tuple[list, dict]:
    """Rows for a stage input: `default` (an artifact folder) when `source` is '', else a pulled source.

    `source` may be 'hub:<repo>:<config>[@<rev>]', a published folder '<folder>:<config>' or an artifact
    folder. Also returns facts for metrics ({} for the default; else source and resolved revision).
    """
    if not source:
        if default is None:
            raise ArtifactError("no source given and no default artifact")
        return read_artifact(default, row_type), {}
    rows, _, revision, name = _pull(source, row_type, split, token, endpoint, cache_dir)
    return rows, {"source": name, "hub_revision": revision}
