"""publish stage: the run's datasets (and chosen models) as Hugging Face Hub repos; a dry run by default.

    dvc repro publish     # or, without DVC:
    python -m stages.publish

Writes hub/<repo name>/ for the dataset (data/<config>/*.parquet and a README.md card from the
manifests) and for each model in publish.models, exactly as the repos will hold them, plus
hub/publish.json, which lists the folders it wrote: a folder there that no publish wrote is never replaced (the
stage stops and names it). With publish.push: true and a token (HF_TOKEN or `hf auth login`) it also uploads
each folder in one commit; content already on the Hub makes no new commit.
"""

from pathlib import Path

from stages.common import load_section, log, loop_items, stage_main
from stair.errors import HubError
from stair.hub.cards import build_dataset_folder, build_model_folder, dvc_lock_md5s, git_commit
from stair.hub.publish import REPORT_FILE, PublishParams, check_targets, expand_configs, repo_id_for
from stair.hub.push import hub_user, push_folder
from stair.hub.refs import resolve_token
from stair.store import write_json


@stage_main
def main() -> None:
    params, _ = load_section("publish", PublishParams)
    token = resolve_token() if params.push else None
    if params.push and not token:
        raise HubError("publish.push is true but there is no token: set HF_TOKEN or run `hf auth login`")
    user = params.user or (hub_user(token) if params.push else "user")
    configs = expand_configs(params.configs, loop_items())
    models = {name: Path("models") / name for name in params.models}
    lock_md5 = dvc_lock_md5s(Path("dvc.lock"), [*configs.values(), *models.values()])
    lineage = {"git_commit": git_commit(), "lock_md5": lock_md5}
    out = Path(params.out)
    dataset = params.repo_id or repo_id_for(params, user, params.dataset_name)
    model_repos = {name: repo_id_for(params, user, name) for name in models}
    check_targets(out, [out / repo.split("/")[-1] for repo in (dataset, *model_repos.values())])
    folder = build_dataset_folder(configs, out / dataset.split("/")[-1], dataset, params.license, **lineage)
    folders = {dataset: ("dataset", folder)}
    for name, path in models.items():
        repo = model_repos[name]
        folders[repo] = ("model", build_model_folder(path, out / repo.split("/")[-1], repo, params.license,
                                                     datasets=[dataset], **lineage))
    report = {}
    for repo, (repo_type, folder) in folders.items():
        status = "dry run"
        if params.push:
            commit = push_folder(folder, repo, token, params.revision, params.private, repo_type=repo_type)
            status = f"committed {commit}" if commit else "unchanged"
        report[repo] = {"type": repo_type, "folder": str(folder), "revision": params.revision, "status": status}
        log.info("%s %s: %s (%s)", repo_type, repo, status, folder)
    write_json(out / REPORT_FILE, report)


if __name__ == "__main__":
    main()
