"""The `publish` section: which artifacts and models go to which Hub repos (read by stages/publish.py)."""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stair.errors import ParamsError

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

    def __post_init__(self) -> None:
        out = Path(self.out)
        if not self.out or out.is_absolute() or ".." in out.parts or out == Path("."):
            raise ValueError(f"out={self.out!r} must be a folder inside the project (as dvc.yaml's `hub`)")
        if self.repo_id:
            check_repo_id(self.repo_id, "repo_id")
        try:
            self.repo_template.format(user="user", name="name")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"repo_template={self.repo_template!r} may use only {{user}} and {{name}} ({err})") from None
        for name, path in self.configs.items():
            if not isinstance(name, str) or not isinstance(path, str):
                raise ValueError(f"configs: {name!r}: {path!r} should map a config name to an artifact folder")


# A Hub repo id: 'namespace/name', each part letters, digits, '-', '_', '.', starting and ending with a letter
# or digit, no '--' or '..' (the Hub's own rule); the name is also a folder of `out`.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")


def check_repo_id(repo: str, what: str) -> str:
    if not REPO_ID.fullmatch(repo) or "--" in repo or ".." in repo or len(repo.split("/")[1]) > 96:
        raise ValueError(f"{what}: {repo!r} is not a Hub repo id 'namespace/name' (letters, digits, '-', '_', '.')")
    return repo


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
    repo = params.repo_template.format(user=user, name=name.replace("/", "-"))
    try:
        return check_repo_id(repo, "publish.repo_template")
    except ValueError as err:
        raise ParamsError(str(err)) from None


REPORT_FILE = "publish.json"


def check_targets(out: Path, folders: Iterable[Path]) -> None:
    """Refuse (ParamsError) to replace a folder under `out` that an earlier publish did not write (it is listed in
    `out`/publish.json): publishing writes each repo's folder afresh, and must not delete what it did not create."""
    try:
        written = {str(Path(r["folder"])) for r in json.loads((out / REPORT_FILE).read_text()).values()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        written = set()
    for folder in folders:
        if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())) and str(folder) not in written:
            raise ParamsError(f"publish: {folder} exists and was not written by publish; refusing to replace it "
                              "(remove it, or set publish.out or the repo name to another folder)")
