"""`hub:<repo_id>[:<config>][@<revision>]` references, offline mode, and the token (never shown).

Tokens come from HF_TOKEN or the huggingface_hub token cache. They are never written, logged or
put in a card, and a failed Hub call is re-raised as `HubError` with the token replaced by '***'.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stair.errors import ArtifactError, HubError, HubUnavailable

HUB_PREFIX = "hub:"
REDACTED = "***"


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
        raise ArtifactError(f"{source!r}: bad repo id {repo_id!r} (expected 'hub:<repo_id>[:<config>][@<revision>]')")
    return HubRef(repo_id, config or None, revision or None)


def parse_source(source: "str | Path | HubRef | LocalRef") -> HubRef | LocalRef:
    """A `hub:` reference, or a local folder written as `<folder>[:<config>]`."""
    if isinstance(source, (HubRef, LocalRef)):
        return source
    if isinstance(source, Path):
        return LocalRef(source)
    if not source.strip():
        raise ArtifactError("an empty source: give a folder or 'hub:<repo_id>[:<config>][@<revision>]'")
    if is_hub_ref(source):
        return parse_hub_ref(source)
    if Path(source).exists():
        return LocalRef(Path(source))
    folder, _, config = source.rpartition(":")
    if folder and Path(folder).is_dir():
        return LocalRef(Path(folder), config or None)
    raise ArtifactError(f"{source}: no such folder, and not a Hub reference 'hub:<repo_id>[:<config>][@<revision>]'")


def endpoint_url(endpoint: str | None) -> str | None:
    """The endpoint to pass explicitly: huggingface_hub reads HF_ENDPOINT only once, at import."""
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def check_online(what: object) -> None:
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


def call_hub(token: str | None, what: str, func: Callable, /, *args: Any, **kwargs: Any) -> Any:
    """func(*args, **kwargs); any failure becomes a HubError whose message is redacted and has no chained cause."""
    try:
        return func(*args, **kwargs)
    except (ArtifactError, HubUnavailable):
        raise
    except Exception as err:  # noqa: BLE001 - every client error must be redacted before it surfaces
        message = redact(f"{what} failed: {type(err).__name__}: {err}", token)
    raise HubError(message)  # raised outside `except`, so the original (unredacted) error is not attached

