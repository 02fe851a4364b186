"""Dataset and model cards, and the folders a publish builds exactly as the Hub repos will hold them.

`build_dataset_folder` writes data/<config>/train-00000-of-00001.parquet per config plus a README.md
dataset card generated from the manifests (what each config holds, its schema as a table, its params
and lineage); `build_model_folder` adds a model card to a `save_pretrained` folder. The same inputs
give the same bytes, so pushing an unchanged folder makes no commit.
"""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel

from schemas import ROW_TYPES, EvalRecord, PRMExample, SeedPrompt, SFTExample, StepPair, TreeNode
from stair.errors import ArtifactError
from stair.hub.refs import redact, resolve_token
from stair.store import DATA_FILE, atomic_dir, read_artifact, read_manifest

CARD_FILE = "README.md"
PARQUET_NAME = "train-00000-of-00001.parquet"

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
    "prm_labels": "Process-reward-model data: partial responses labelled with the value of their last step.",
    "heldout": "Judged responses of a model on the held-out prompts.",
    "search": "Judged responses of test-time search (greedy, best-of-N, beam) guided by the PRM.",
    "eval": "Judged responses of the models on the evaluation benchmarks.",
}
# Row type by config name (without the iteration), for pulling layouts whose columns don't say it.
CONFIG_ROW_TYPES = {"sft": SFTExample, "prompts": SeedPrompt, "trees": TreeNode, "nodes": TreeNode,
                    "pairs": StepPair, "prm_labels": PRMExample, "heldout": EvalRecord,
                    "search": EvalRecord, "eval": EvalRecord}
CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10B")


def config_base(name: str) -> tuple[str, str | None]:
    """'pairs_2' -> ('pairs', '2'); 'heldout_dpo_1' -> ('heldout', ...) via prefix match; 'sft' -> ('sft', None)."""
    head, _, tail = name.rpartition("_")
    base, iteration = (head, tail) if head and tail.isdigit() else (name, None)
    if base not in CONFIG_DESCRIPTIONS:
        base = next((known for known in CONFIG_DESCRIPTIONS if base.startswith(known + "_")), base)
    return base, iteration


def describe_config(name: str, row_type: type[BaseModel]) -> str:
    base, iteration = config_base(name)
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

