"""Hugging Face Hub access: dataset references `hub:<repo_id>[:<config>][@<revision>]`, offline-aware."""

import os
from dataclasses import dataclass

HUB_PREFIX = "hub:"


class HubUnavailable(RuntimeError):
    """A Hub id is configured but the Hub can't be reached (offline mode)."""


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


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def load_hub_records(ref: HubRef, split: str = "train") -> tuple[list[dict], str | None]:
    """All rows of one split of a Hub dataset, and the resolved commit (for the manifest).

    Fails at once, with a clear message, when offline mode is on (instead of a long network timeout).
    """
    if hub_offline():
        raise HubUnavailable(
            f"{ref} is configured but the Hugging Face Hub is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set). "
            "Use a local file or the builtin source, or unset offline mode on a machine with network access."
        )
    from datasets import load_dataset
    from huggingface_hub import HfApi

    revision = HfApi().dataset_info(ref.repo_id, revision=ref.revision).sha
    dataset = load_dataset(ref.repo_id, ref.config, split=split, revision=revision)
    return dataset.to_list(), revision
