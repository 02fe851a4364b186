"""Mirror a built folder to a Hub repo in one commit; unchanged content makes no commit."""

import hashlib
from pathlib import Path
from typing import Any

from stair.errors import HubError
from stair.hub.refs import call_hub, check_online, endpoint_url, resolve_token


def hub_user(token: str | None = None, endpoint: str | None = None) -> str:
    """The account name of the token (for `{user}` in repo templates)."""
    from huggingface_hub import HfApi

    token = resolve_token(token)
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    return call_hub(token, "whoami", HfApi(endpoint=endpoint_url(endpoint), token=token).whoami)["name"]


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
    check_online(where)
    api = HfApi(endpoint=endpoint_url(endpoint), token=token)
    call_hub(token, f"creating {where}", api.create_repo, repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if revision != "main":
        call_hub(token, f"creating branch {revision} of {where}", api.create_branch, repo_id, branch=revision,
                 repo_type=repo_type, exist_ok=True)
    head = call_hub(token, f"reading {where}", api.repo_info, repo_id, repo_type=repo_type, revision=revision).sha
    tree = call_hub(token, f"listing {where}",
                    lambda: list(api.list_repo_tree(repo_id, recursive=True, revision=head, repo_type=repo_type)))
    remote = {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}
    local = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    operations: list = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(file))
                        for path, file in local.items() if not _same_content(file, remote.get(path))]
    operations += [CommitOperationDelete(path_in_repo=path) for path in sorted(remote)
                   if path not in local and path != ".gitattributes"]
    if not operations:
        return None
    info = call_hub(token, f"committing to {where}", api.create_commit, repo_id, operations,
                    commit_message=commit_message or f"stair: publish {folder.name}", repo_type=repo_type,
                    revision=revision, parent_commit=head)
    return None if info.oid == head else info.oid  # the client itself skips a commit that changes nothing
