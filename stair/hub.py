"""Hugging Face Hub access: `hub:<repo_id>[:<config>][@<revision>]` references, publishing and pulling.

Publishing first builds a repo exactly as it will sit on the Hub, as a local folder
(`build_dataset_folder`: data/<config>/train-00000-of-00001.parquet per config plus a README.md
dataset card generated from the manifests; `build_model_folder` for a `save_pretrained` folder),
then mirrors the folder to the Hub in one commit (`push_folder`); unchanged content makes no commit.

Pulling (`pull_dataset`, `pull_to_artifact`, `load_rows`) resolves the revision to a commit sha,
maps STAIR's published layouts (STAIR-SFT, STAIR-Prompts) onto the `schemas` row types and validates
every row; our own published configs load as they are. A published folder on disk works offline.

Tokens come from HF_TOKEN or the huggingface_hub token cache. They are never written, logged or
put in a card, and a failed Hub call is re-raised as `HubError` with the token replaced by '***'.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel

from schemas import ROW_TYPES, EvalRecord, PRMExample, SeedPrompt, SFTExample, StepPair, TreeNode
from stair.store import (
    DATA_FILE,
    MANIFEST_FILE,
    ArtifactError,
    atomic_dir,
    read_artifact,
    read_manifest,
    validate_rows,
    write_artifact,
)

HUB_PREFIX = "hub:"
CARD_FILE = "README.md"
PARQUET_NAME = "train-00000-of-00001.parquet"
REDACTED = "***"


class HubUnavailable(RuntimeError):
    """A Hub id is configured but the Hub can't be reached (offline mode)."""


class HubError(HubUnavailable):
    """A Hub request failed. The message never holds the token. (A HubUnavailable, so stages report it in one line.)"""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    config: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        text = HUB_PREFIX + self.repo_id
        if self.config:
            text += f":{self.config}"
        if self.revision:
            text += f"@{self.revision}"
        return text


@dataclass(frozen=True)
class LocalRef:
    """A published folder on disk (as written by `build_dataset_folder`), or an artifact folder."""

    folder: Path
    config: str | None = None

    def __str__(self) -> str:
        return f"{self.folder}:{self.config}" if self.config else str(self.folder)


def is_hub_ref(source: str) -> bool:
    return source.startswith(HUB_PREFIX)


def parse_hub_ref(source: str) -> HubRef:
    """Parse 'hub:org/name[:config][@revision]'."""
    if not is_hub_ref(source):
        raise ValueError(f"{source!r} is not a Hub reference (expected 'hub:<repo_id>[:<config>][@<revision>]')")
    body = source[len(HUB_PREFIX) :]
    body, _, revision = body.partition("@")
    repo_id, _, config = body.partition(":")
    if not repo_id or repo_id.count("/") > 1:
        raise ValueError(f"{source!r}: bad repo id {repo_id!r}")
    return HubRef(repo_id, config or None, revision or None)


def parse_source(source: "str | Path | HubRef | LocalRef") -> HubRef | LocalRef:
    """A `hub:` reference, or a local folder written as `<folder>[:<config>]`."""
    if isinstance(source, (HubRef, LocalRef)):
        return source
    if isinstance(source, Path):
        return LocalRef(source)
    if is_hub_ref(source):
        return parse_hub_ref(source)
    if Path(source).exists():
        return LocalRef(Path(source))
    folder, _, config = source.rpartition(":")
    if folder and Path(folder).is_dir():
        return LocalRef(Path(folder), config or None)
    raise ArtifactError(f"{source}: no such folder, and not a Hub reference 'hub:<repo_id>[:<config>][@<revision>]'")


def _endpoint(endpoint: str | None) -> str | None:
    """The endpoint to pass explicitly: huggingface_hub reads HF_ENDPOINT only once, at import."""
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _check_online(what: object) -> None:
    if hub_offline():
        raise HubUnavailable(
            f"{what} is configured but the Hugging Face Hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set). "
            "Use a local file or the builtin source, or unset offline mode on a machine with network access."
        )


# --- tokens -----------------------------------------------------------------------------------


def resolve_token(token: str | None = None) -> str | None:
    """The token to use: the argument, HF_TOKEN, or the huggingface_hub token cache (`hf auth login`)."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (and HF_TOKEN's value) replaced by '***'."""
    for secret in {*secrets, os.environ.get("HF_TOKEN")}:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _call(token: str | None, what: str, func: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """func(*args, **kwargs); any failure becomes a HubError whose message is redacted and has no chained cause."""
    try:
        return func(*args, **kwargs)
    except (ArtifactError, HubUnavailable):
        raise
    except Exception as err:  # noqa: BLE001 - every client error must be redacted before it surfaces
        message = redact(f"{what} failed: {type(err).__name__}: {err}", token)
    raise HubError(message)  # raised outside `except`, so the original (unredacted) error is not attached


def hub_user(token: str | None = None, endpoint: str | None = None) -> str:
    """The account name of the token (for `{user}` in repo templates)."""
    from huggingface_hub import HfApi

    token = resolve_token(token)
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    return _call(token, "whoami", HfApi(endpoint=_endpoint(endpoint), token=token).whoami)["name"]


# --- dataset cards --------------------------------------------------------------------------------

TAGS = ("stair", "safety", "alignment", "preference", "reasoning", "mcts", "dpo")
SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"))
# What a config holds, by name without its `_<iteration>` suffix (also matched as a prefix: heldout_sft).
CONFIG_DESCRIPTIONS = {
    "sft": "SFT warm-up set: prompts with structured chain-of-thought teacher responses (steps, then the output).",
    "prompts": "Prompts of the run: SI-MCTS seeds (`iter_<k>` splits) and held-out evaluation items, with kind "
               "(safety / helpfulness), expected behaviour and ground truth where known.",
    "trees": "SI-MCTS search trees, one row per node: the step, visits, backed-up value and rewards.",
    "nodes": "SI-MCTS search trees, one row per node: the step, visits, backed-up value and rewards.",
    "pairs": "Step-level preference pairs for DPO: two sibling steps after the same prefix whose values differ "
             "clearly (chosen vs rejected).",
    "best_leaves": "Best-scoring complete responses from the search trees, as SFT examples.",
    "prm_labels": "Process-reward-model data: partial responses labelled with the value of their last step.",
    "heldout": "Judged responses of a model on the held-out prompts.",
    "search": "Judged responses of test-time search (greedy, best-of-N, beam) guided by the PRM.",
    "eval": "Judged responses of the models on the evaluation benchmarks.",
}
# Row type by config name (without the iteration), for pulling layouts whose columns don't say it.
CONFIG_ROW_TYPES = {"sft": SFTExample, "prompts": SeedPrompt, "trees": TreeNode, "nodes": TreeNode,
                    "pairs": StepPair, "best_leaves": SFTExample, "prm_labels": PRMExample, "heldout": EvalRecord,
                    "search": EvalRecord, "eval": EvalRecord}
CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10B")


def _config_base(name: str) -> tuple[str, str | None]:
    """'pairs_2' -> ('pairs', '2'); 'heldout_dpo_1' -> ('heldout', ...) via prefix match; 'sft' -> ('sft', None)."""
    head, _, tail = name.rpartition("_")
    base, iteration = (head, tail) if head and tail.isdigit() else (name, None)
    if base not in CONFIG_DESCRIPTIONS:
        base = next((known for known in CONFIG_DESCRIPTIONS if base.startswith(known + "_")), base)
    return base, iteration


def describe_config(name: str, row_type: type[BaseModel]) -> str:
    base, iteration = _config_base(name)
    text = CONFIG_DESCRIPTIONS.get(base) or (row_type.__doc__ or row_type.__name__).strip().splitlines()[0]
    return f"{text} Iteration {iteration}." if iteration else text


def _json_type(prop: dict) -> str:
    if "anyOf" in prop:
        return " \\| ".join(_json_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if prop.get("type") == "array":
        return f"list[{_json_type(prop.get('items', {}))}]"
    return str(prop.get("type", "any"))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def schema_table(row_type: type[BaseModel]) -> str:
    """A markdown table of the row type's fields from its JSON Schema: name, type, required/default, description."""
    schema = row_type.model_json_schema()
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        need = "yes" if name in required else f"no (default `{json.dumps(prop.get('default'))}`)"
        lines.append(f"| `{name}` | {_json_type(prop)} | {need} | {_cell(prop.get('description', ''))} |")
    return "\n".join(lines)


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def _front_matter(meta: dict) -> str:
    return f"---\n{_yaml(meta)}---\n"


def read_card_metadata(folder: Path) -> dict:
    """The YAML front matter of `<folder>/README.md` ({} when there is none)."""
    card = Path(folder) / CARD_FILE
    if not card.is_file():
        return {}
    text = card.read_text()
    match = re.match(r"---\n(.*?\n)---\n", text, re.S)
    try:
        return (yaml.safe_load(match.group(1)) or {}) if match else {}
    except yaml.YAMLError as err:
        raise ArtifactError(f"{card}: front matter is not valid YAML ({err})") from None


def _lineage_lines(git_commit: str | None) -> list[str]:
    return [f"- code: `stair` at git commit `{git_commit}`" if git_commit else "- code: `stair` (git commit unknown)"]


def dataset_card(entries: list[dict], repo_id: str, license: str, pretty_name: str,
                 git_commit: str | None, tags: Iterable[str], empty: Mapping[str, str] | None = None) -> str:
    """README.md of a published dataset; `entries` hold config, path, row_type, manifest, lock_md5 per config.

    `empty` (config -> artifact path) lists artifacts left out for having no rows.
    """
    total = sum(e["manifest"].rows for e in entries)
    meta = {
        "license": license,
        "pretty_name": pretty_name,
        "task_categories": ["text-generation"],
        "tags": list(dict.fromkeys([*TAGS, *tags])),
        "size_categories": [size_category(total)],
        "configs": [
            {"config_name": e["config"], "data_files": [{"split": "train", "path": f"data/{e['config']}/{PARQUET_NAME}"}]}
            for e in entries
        ],
    }
    first = entries[0]["config"] if entries else "sft"
    out = [
        _front_matter(meta),
        f"# {pretty_name}\n",
        "Datasets of one run of `stair`, a reproduction of STAIR (*Improving Safety Alignment with Introspective "
        "Reasoning*, [arXiv:2502.02384](https://arxiv.org/abs/2502.02384)) as a DVC pipeline: SFT on structured chain-of-thought, self-improvement by safety-informed "
        "MCTS (SI-MCTS) with step-level DPO, and a process reward model for test-time search. Every config is one "
        "pipeline artifact, every row validated against the `stair` schema shown below.\n",
        "## Configs\n",
        "| config | rows | row type | what it is |",
        "|---|---|---|---|",
        *(f"| `{e['config']}` | {e['manifest'].rows} | `{e['row_type'].__name__}` | "
          f"{_cell(describe_config(e['config'], e['row_type']))} |" for e in entries),
        "",
        *(["Left out for having no rows (the `datasets` library can't load an empty split): "
           + ", ".join(f"`{c}` (`{p}`)" for c, p in empty.items()) + ".\n"] if empty else []),
        "## Usage\n",
        "```python",
        "from datasets import load_dataset",
        "",
        f'rows = load_dataset("{repo_id}", "{first}", split="train")',
        "```\n",
        "## Lineage\n",
        *_lineage_lines(git_commit),
        *(f"- `{e['config']}`: artifact `{e['path']}` from stage `{e['manifest'].stage}`"
          + (f", dvc.lock md5 `{e['lock_md5']}`" if e["lock_md5"] else "") for e in entries),
        "",
    ]
    for e in entries:
        manifest = e["manifest"]
        out += [
            f"## `{e['config']}`\n",
            describe_config(e["config"], e["row_type"]) + "\n",
            f"- rows: {manifest.rows}",
            f"- row type: `{e['row_type'].__name__}` - {(e['row_type'].__doc__ or '').strip().splitlines()[0]}",
            f"- stage: `{manifest.stage}`, params sha256 `{manifest.params_hash}`",
            *([f"- dvc.lock md5 of `{e['path']}`: `{e['lock_md5']}`"] if e["lock_md5"] else []),
            *(f"- input `{i.path}`: md5 `{i.md5}`" for i in manifest.inputs),
            "",
            "### Schema\n",
            schema_table(e["row_type"]),
            "",
            "### Params\n",
            "```yaml",
            _yaml(manifest.params).rstrip() if manifest.params else "{}",
            "```\n",
        ]
        if manifest.extra:
            out += ["### Extra\n", "```yaml", _yaml(manifest.extra).rstrip(), "```\n"]
    return redact("\n".join(out), resolve_token())


def build_dataset_folder(artifacts: Mapping[str, Path], out_dir: Path, repo_id: str, license: str = "apache-2.0",
                         *, pretty_name: str | None = None, git_commit: str | None = None,
                         lock_md5: Mapping[str, str] | None = None, tags: Iterable[str] = ()) -> Path:
    """Write `out_dir` exactly as the dataset repo `repo_id` will hold it (atomically; same inputs, same bytes).

    `artifacts` maps config name -> artifact folder; each becomes data/<config>/train-00000-of-00001.parquet
    (the artifact's parquet, after validating every row) and a section of the README.md dataset card.
    An artifact without rows is only named in the card: `datasets` can't load an empty split.
    `git_commit` and `lock_md5` (artifact path -> md5 in dvc.lock, see `dvc_lock_md5s`) go into the lineage.
    """
    entries, empty = [], {}
    for config, path in artifacts.items():
        if not CONFIG_NAME.fullmatch(config):
            raise ArtifactError(f"config name {config!r}: use letters, digits, '_', '-' or '.'")
        read_artifact(Path(path))  # validates every row against the manifest's row type
        manifest = read_manifest(Path(path))
        if manifest.rows == 0:
            empty[config] = str(path)
            continue
        entries.append({"config": config, "path": str(path), "manifest": manifest,
                        "row_type": ROW_TYPES[manifest.row_type], "lock_md5": (lock_md5 or {}).get(str(path))})
    if not entries:
        raise ArtifactError(f"{out_dir}: nothing to publish (no artifacts, or all of them empty)")
    card = dataset_card(entries, repo_id, license, pretty_name or f"STAIR {repo_id.split('/')[-1]}", git_commit, tags,
                        empty)
    with atomic_dir(Path(out_dir)) as tmp:
        for e in entries:
            target = tmp / "data" / e["config"] / PARQUET_NAME
            target.parent.mkdir(parents=True)
            shutil.copyfile(Path(e["path"]) / DATA_FILE, target)
        (tmp / CARD_FILE).write_text(card)
    return Path(out_dir)


def model_card(repo_id: str, license: str, source: Path, *, base_model: str | None, datasets: Iterable[str],
               git_commit: str | None, lock_md5: str | None) -> str:
    meta: dict = {"license": license, "library_name": "transformers", "pipeline_tag": "text-generation",
                  "tags": list(TAGS)}
    if datasets:
        meta["datasets"] = list(datasets)
    if base_model:
        meta["base_model"] = base_model
    lines = [
        _front_matter(meta),
        f"# {repo_id.split('/')[-1]}\n",
        f"A policy trained by `stair` (STAIR: SFT on structured chain-of-thought, then SI-MCTS with step-level "
        f"DPO), from the pipeline's `{source}`. It answers in the STAIR format: numbered reasoning steps, then "
        "the final output.\n",
        "## Usage\n",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
        "```\n",
        "## Lineage\n",
        *_lineage_lines(git_commit),
        *([f"- dvc.lock md5 of `{source}`: `{lock_md5}`"] if lock_md5 else []),
        *(f"- trained on data published as `{d}`" for d in datasets),
        "",
    ]
    return redact("\n".join(lines), resolve_token())


def build_model_folder(model_dir: Path, out_dir: Path, repo_id: str, license: str = "apache-2.0", *,
                       base_model: str | None = None, datasets: Iterable[str] = (), git_commit: str | None = None,
                       lock_md5: Mapping[str, str] | None = None) -> Path:
    """`out_dir` = the `save_pretrained` folder (files hard-linked where possible) plus a generated model card."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ArtifactError(f"{model_dir}: not a save_pretrained folder (no config.json)")
    card = model_card(repo_id, license, model_dir, base_model=base_model, datasets=list(datasets),
                      git_commit=git_commit, lock_md5=(lock_md5 or {}).get(str(model_dir)))
    with atomic_dir(Path(out_dir)) as tmp:
        for file in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != CARD_FILE):
            target = tmp / file.relative_to(model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, target)
            except OSError:
                shutil.copyfile(file, target)
        (tmp / CARD_FILE).write_text(card)
    return Path(out_dir)


def git_commit(cwd: Path | None = None) -> str | None:
    """`git rev-parse HEAD`, or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def dvc_lock_md5s(lock: Path, paths: Iterable[Path | str]) -> dict[str, str]:
    """md5 that dvc.lock records for each of `paths` (outs first, then deps); missing lock or path: left out."""
    lock = Path(lock)
    if not lock.is_file():
        return {}
    found: dict[str, str] = {}
    for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
        for entry in [*stage.get("outs", []), *stage.get("deps", [])]:
            if "md5" in entry:
                found.setdefault(str(Path(entry["path"])), entry["md5"])
    return {str(p): found[str(Path(p))] for p in paths if str(Path(p)) in found}


# --- pushing --------------------------------------------------------------------------------------


def _same_content(file: Path, remote: Any) -> bool:
    """Whether a local file equals a remote RepoFile: LFS sha256, else the git blob sha1."""
    if remote is None:
        return False
    data = file.read_bytes()
    if remote.lfs is not None:
        return hashlib.sha256(data).hexdigest() == remote.lfs.sha256
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == remote.blob_id


def push_folder(folder: Path, repo_id: str, token: str | None = None, revision: str = "main", private: bool = True,
                *, repo_type: str = "dataset", commit_message: str | None = None,
                endpoint: str | None = None) -> str | None:
    """Make `revision` of the Hub repo hold exactly `folder` (besides .gitattributes), in one commit.

    Creates the repo if needed (private by default; an existing repo keeps its visibility) and the
    branch if it isn't main. Only changed files are sent and files no longer in `folder` are deleted;
    when nothing differs no commit is made. Returns the new commit sha, or None when nothing changed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.hf_api import RepoFile

    folder = Path(folder)
    token = resolve_token(token)
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    where = f"{repo_type} repo {repo_id}@{revision}"
    _check_online(where)
    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    _call(token, f"creating {where}", api.create_repo, repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if revision != "main":
        _call(token, f"creating branch {revision} of {where}", api.create_branch, repo_id, branch=revision,
              repo_type=repo_type, exist_ok=True)
    head = _call(token, f"reading {where}", api.repo_info, repo_id, repo_type=repo_type, revision=revision).sha
    tree = _call(token, f"listing {where}",
                 lambda: list(api.list_repo_tree(repo_id, recursive=True, revision=head, repo_type=repo_type)))
    remote = {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}
    local = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    operations: list = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(file))
                        for path, file in local.items() if not _same_content(file, remote.get(path))]
    operations += [CommitOperationDelete(path_in_repo=path) for path in sorted(remote)
                   if path not in local and path != ".gitattributes"]
    if not operations:
        return None
    info = _call(token, f"committing to {where}", api.create_commit, repo_id, operations,
                 commit_message=commit_message or f"stair: publish {folder.name}", repo_type=repo_type,
                 revision=revision, parent_commit=head)
    return None if info.oid == head else info.oid  # the client itself skips a commit that changes nothing


# --- pulling --------------------------------------------------------------------------------------


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
    if config and _config_base(config)[0] in CONFIG_ROW_TYPES:
        return CONFIG_ROW_TYPES[_config_base(config)[0]]
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
            from stair.data import map_prompts

            records = map_prompts(records, source, {})
        elif row_type is SFTExample:
            from stair.data import map_sft

            records = map_sft(records, source, {})
    return validate_rows(records, row_type, source)


def _hub_snapshot(ref: HubRef, split: str, token: str | None, endpoint: str | None,
                  cache_dir: Path | None) -> tuple[Path, str]:
    """Download the card, then only the files of the config (everything if the card lists no configs)."""
    from huggingface_hub import HfApi, snapshot_download

    _check_online(ref)
    endpoint = _endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    sha = _call(token, f"resolving {ref}", api.dataset_info, ref.repo_id, revision=ref.revision).sha

    def download(patterns: list[str] | None) -> Path:
        return Path(_call(token, f"downloading {ref}", snapshot_download, ref.repo_id, repo_type="dataset",
                          revision=sha, allow_patterns=patterns, token=token, endpoint=endpoint,
                          cache_dir=None if cache_dir is None else str(cache_dir)))

    folder = download([CARD_FILE])
    configs = _card_data_files(folder, split) if folder.is_dir() else {}
    patterns = configs[_pick_config(configs, ref.config, str(ref))] if configs else None
    return download(patterns and [CARD_FILE, *patterns]), sha


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


def load_hub_records(ref: HubRef, split: str = "train") -> tuple[list[dict], str | None]:
    """All rows of one split of a Hub dataset (any layout, via `datasets`), and the resolved commit (for the manifest).

    Fails at once, with a clear message, when offline mode is on (instead of a long network timeout).
    """
    _check_online(ref)
    from datasets import load_dataset
    from huggingface_hub import HfApi

    token = resolve_token()
    api = HfApi(endpoint=_endpoint(None), token=token)
    revision = _call(token, f"resolving {ref}", api.dataset_info, ref.repo_id, revision=ref.revision).sha
    dataset = _call(token, f"loading {ref}", load_dataset, ref.repo_id, ref.config, split=split, revision=revision,
                    token=token)
    return dataset.to_list(), revision


# --- the publish stage's params -------------------------------------------------------------------

DEFAULT_CONFIGS = {"sft": "data/sft", "prompts": "data/prompts", "trees_{it}": "data/nodes/{it}",
                   "pairs_{it}": "data/pairs/{it}", "prm_labels": "data/prm_labels", "eval": "data/eval"}


@dataclass(frozen=True)
class PublishParams:
    """The `publish` section: which artifacts and models go to which Hub repos. A dry run unless `push`."""

    repo_id: str = ""  # the dataset repo 'org/name'; "" = repo_template with {name} = dataset_name
    repo_template: str = "{user}/stair-{name}"
    user: str = ""  # {user} in repo_template; "" = the token's account when pushing, 'user' in a dry run
    dataset_name: str = "data"
    configs: dict = field(default_factory=lambda: dict(DEFAULT_CONFIGS))  # config -> artifact; {it}: each iteration
    models: tuple[str, ...] = ()  # folders under models/ to publish as model repos (e.g. dpo/3 -> {name} dpo-3)
    license: str = "apache-2.0"
    private: bool = True
    revision: str = "main"
    push: bool = False
    out: str = "hub"  # dry-run folders go to <out>/<repo name>/


def expand_configs(configs: Mapping[str, str], iterations: Iterable[str]) -> dict[str, Path]:
    """Config name -> artifact folder, with '{it}' entries repeated for each iteration."""
    iterations = list(iterations)
    out: dict[str, Path] = {}
    for name, path in configs.items():
        if "{it}" in name or "{it}" in str(path):
            out.update({name.format(it=it): Path(str(path).format(it=it)) for it in iterations})
        else:
            out[name] = Path(path)
    return out


def repo_id_for(params: PublishParams, user: str, name: str) -> str:
    return params.repo_template.format(user=user, name=name.replace("/", "-"))
