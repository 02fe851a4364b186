"""The `publish` section: which artifacts and models go to which Hub repos (read by stages/publish.py)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
