"""Reading Hub datasets and published folders as validated `schemas` rows, through one reader.

A Hub source first fails at once in offline mode, resolves its revision to a commit sha and redacts the
token from errors (`resolve_revision`); then it is read as a folder is, the card's entry for the config
deciding how:

- parquet `data_files`: pyarrow on exactly those files (the types as written, no `datasets` cache);
- other `data_files` (json, csv): `datasets` on the folder;
  on the Hub, only the card and the config's data files are downloaded, for either;
- no `data_files` (no `configs:` in the card, or a `data_dir`): `datasets` on the folder, or on the Hub
  repo at the resolved commit (it finds the split's files itself).

The data stage's `hub:` inputs (`load_hub_records`: records, which `stair.data` maps itself) and `stair pull`
and stage inputs (`pull_dataset`, `pull_to_artifact`, `load_rows`: rows, STAIR's published layouts mapped by
`stair.columns`) share it.
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


def _card_data_files(folder: Path, split: str) -> dict[str, list[str] | None]:
    """Config name -> data file patterns of `split`, from the card's `configs:` ({} when the card has none).

    Patterns without a split are the train split's, as `datasets` reads them; None: the entry names no
    data files (`data_dir`), so `datasets` finds them.
    """
    configs = {}
    for entry in read_card_metadata(folder).get("configs") or []:
        name = entry.get("config_name", "default")
        files = entry.get("data_files")
        if not files:
            configs[name] = None
            continue
        if isinstance(files, (str, dict)):
            files = [files]
        if all(isinstance(f, dict) and "split" in f for f in files):
            files = [f["path"] for f in files if f["split"] == split]
        elif split != "train":
            files = []
        patterns = []
        for item in files:
            paths = item["path"] if isinstance(item, dict) else item
            patterns += [paths] if isinstance(paths, str) else list(paths)
        configs[name] = patterns
    return configs


def _pick_config(configs: dict, config: str | None, where: str) -> str:
    if config is None:
        if len(configs) != 1:
            raise ArtifactError(f"{where}: several configs ({', '.join(configs)}); name one as <source>:<config>")
        return next(iter(configs))
    if config not in configs:
        raise ArtifactError(f"{where}: no config {config!r}; configs: {', '.join(configs) or '(none)'}")
    return config


def _records(dataset) -> tuple[list[dict], list[str]]:
    return dataset.to_list(), list(dataset.column_names)


def _folder_records(folder: Path, config: str | None, split: str,
                    where: str | None = None) -> tuple[list[dict], list[str], str | None]:
    """Records, column names and config of a published folder, read as the module docstring says."""
    where = where or str(folder)
    configs = _card_data_files(folder, split)
    if configs:
        config = _pick_config(configs, config, where)
        if configs[config] is not None:
            files = sorted({f for pattern in configs[config] for f in folder.glob(pattern) if f.is_file()})
            if not files:
                raise ArtifactError(f"{where}: config {config!r} has no {split!r} data files ({configs[config]})")
            if all(f.suffix == ".parquet" for f in files):
                table = pa.concat_tables([_read_parquet(f) for f in files], promote_options="default")
                if not table.num_rows:
                    raise ArtifactError(f"{where}: config {config!r} has no rows (an empty input is not a dataset)")
                return table.to_pylist(), table.column_names, config
    from datasets import load_dataset

    try:
        dataset = load_dataset(str(folder), config, split=split)
    except Exception as err:  # datasets' own errors: no data files, unparsable files, an unknown config
        raise ArtifactError(f"{where}: not a dataset folder the datasets library can read "
                            f"({type(err).__name__}: {err})") from err
    return *_records(dataset), config


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


def _hub_records(ref: HubRef, split: str, token: str | None, endpoint: str | None,
                 cache_dir: Path | None) -> tuple[list[dict], list[str], str | None, str]:
    """Records, column names, config and commit of a Hub dataset, read as the module docstring says: the
    card first, then only the config's data files when it lists them, else `datasets` on the repo."""
    from huggingface_hub import snapshot_download

    sha = resolve_revision(ref, token, endpoint)
    endpoint = endpoint_url(endpoint)

    def download(patterns: list[str]) -> Path:
        return Path(call_hub(token, f"downloading {ref}", snapshot_download, ref.repo_id, repo_type="dataset",
                             revision=sha, allow_patterns=patterns, token=token, endpoint=endpoint,
                             cache_dir=None if cache_dir is None else str(cache_dir)))

    folder = download([CARD_FILE])
    configs = _card_data_files(folder, split) if folder.is_dir() else {}
    config = _pick_config(configs, ref.config, str(ref)) if configs else ref.config
    if configs.get(config) is not None:
        folder = download([CARD_FILE, *configs[config]])
        return *_folder_records(folder, config, split, where=str(ref)), sha
    from datasets import load_dataset

    dataset = call_hub(token, f"loading {ref}", load_dataset, ref.repo_id, config, split=split, revision=sha,
                       token=token, cache_dir=None if cache_dir is None else str(cache_dir))
    return *_records(dataset), config, sha


def load_hub_records(ref: HubRef, split: str = "train") -> tuple[list[dict], str | None]:
    """All rows of one split of a Hub dataset, as records, and the resolved commit (for the manifest).

    The data stage's reader (it checks and maps the records itself). Fails at once when offline mode is on.
    """
    records, _, _, revision = _hub_records(ref, split, resolve_token(), None, None)
    return records, revision


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
        records, columns, config, revision = _hub_records(ref, split, resolve_token(token), endpoint, cache_dir)
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
