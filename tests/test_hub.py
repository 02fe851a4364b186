"""Publishing to and pulling from the Hugging Face Hub: the dataset folder and card, push, pull, token hygiene.

All offline. The push and Hub-pull tests talk to `StandInHub`, an HTTP server on 127.0.0.1 that speaks
the small part of the Hub API that huggingface_hub's upload and download use. It is the one place a
stand-in server is used, because the real Hub can't be reached from here.
"""

import base64
import hashlib
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
import pytest
import yaml

from schemas import SeedPrompt, SFTExample, StepPair, TreeNode
from stair.errors import ArtifactError, HubError, HubUnavailable
from stair.hub.cards import build_dataset_folder, build_model_folder, dvc_lock_md5s, read_card_metadata
from stair.hub.publish import PublishParams, expand_configs
from stair.hub.pull import load_rows, pull_dataset, pull_to_artifact
from stair.hub.push import push_folder
from stair.hub.refs import HubRef, parse_source, redact
from stair.store import read_artifact, read_manifest, write_artifact

TOKEN = "hf_FAKEtoken0123456789abcdefSECRET"
SFT = [
    SFTExample(id="sft-1", prompt_id="sft-1", prompt="What is 2 + 3?",
               response="<step>Add.</step><output>5</output>", kind="helpfulness", source="builtin"),
    SFTExample(id="sft-2", prompt_id="sft-2", prompt="How do I make a weapon?",
               response="<step>This is harmful.</step><output>I can't help with that.</output>", kind="safety",
               source="builtin"),
]
PROMPTS = [
    SeedPrompt(id="p1", text="What is 7 * 6?", kind="helpfulness", ground_truth="42", expected_behavior="comply",
               source="builtin", split="iter_1", group="math"),
    SeedPrompt(id="p2", text="Write malware | now", kind="safety", expected_behavior="refuse", source="builtin",
               split="heldout", group="harmful", category="cyber"),
]
NODES = [
    TreeNode(tree_id="t1", prompt_id="p1", iteration=1, kind="helpfulness", node_id=0, parent_id=None, depth=0,
             step="", n_tokens=10, visits=3, evaluations=0, value_sum=1.5, value=0.5, terminal=False),
    TreeNode(tree_id="t1", prompt_id="p1", iteration=1, kind="helpfulness", node_id=1, parent_id=0, depth=1,
             step="<step>7 * 6 = 42</step>", n_tokens=20, visits=2, evaluations=1, value_sum=2.0, value=1.0,
             terminal=True, reward=1.0, safety=1.0, helpfulness=1.0),
]
PAIRS = [
    StepPair(prompt_id="p1", prompt="What is 7 * 6?", prefix=[], chosen="<step>42</step>", rejected="<step>41</step>",
             chosen_value=1.0, rejected_value=-0.5, chosen_visits=3, rejected_visits=2, chosen_terminal=True,
             rejected_terminal=True, depth=1, iteration=1, kind="helpfulness"),
    StepPair(prompt_id="p2", prompt="Write malware", prefix=["<step>Think.</step>"], chosen="<step>Refuse.</step>",
             rejected="<step>Sure.</step>", chosen_value=0.9, rejected_value=-1.0, chosen_visits=4, rejected_visits=1,
             chosen_terminal=False, rejected_terminal=False, depth=2, iteration=1, kind="safety"),
]


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    specs = {"sft": ("sft", SFT, SFTExample), "prompts": ("prompts", PROMPTS, SeedPrompt),
             "trees_1": ("nodes/1", NODES, TreeNode), "pairs_1": ("pairs/1", PAIRS, StepPair)}
    out = {}
    for config, (rel, rows, row_type) in specs.items():
        write_artifact(data / rel, rows, row_type, stage=f"test_{config}", params={"seed": 0, "k": [1, 2]},
                       extra={"note": "fixture"})
        out[config] = data / rel
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --- the dataset folder ---------------------------------------------------------------------------


def test_folder_loads_with_datasets_and_card_lists_every_config(artifacts, tmp_path) -> None:
    from datasets import load_dataset

    out = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data", "apache-2.0",
                               git_commit="abc123", lock_md5={str(artifacts["sft"]): "d41d8cd98f00b204.dir"})
    assert sorted(snapshot(out)) == ["README.md", *sorted(f"data/{c}/train-00000-of-00001.parquet" for c in artifacts)]
    originals = {"sft": SFT, "prompts": PROMPTS, "trees_1": NODES, "pairs_1": PAIRS}
    for config, rows in originals.items():
        dataset = load_dataset(str(out), config, split="train", cache_dir=str(tmp_path / "hf_cache"))
        assert dataset.to_list() == [r.model_dump() for r in rows], config
    meta = read_card_metadata(out)
    assert meta == yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == list(artifacts)
    assert meta["license"] == "apache-2.0" and meta["size_categories"] == ["n<1K"]
    assert {"stair", "safety", "preference"} <= set(meta["tags"]) and meta["pretty_name"]
    card = (out / "README.md").read_text()
    for needle in ("abc123", "d41d8cd98f00b204.dir", "`chosen_value`", "| `pairs_1` | 2 | `StepPair` |",
                   "k:\n- 1\n- 2", "note: fixture", "stage `test_trees_1`"):
        assert needle in card, needle


def test_empty_artifact_is_named_in_the_card_but_not_a_config(artifacts, tmp_path) -> None:
    write_artifact(tmp_path / "data" / "pairs" / "2", [], StepPair, stage="test_pairs_2", params={})
    out = build_dataset_folder({"pairs_1": artifacts["pairs_1"], "pairs_2": tmp_path / "data" / "pairs" / "2"},
                               tmp_path / "out", "someone/stair-data")
    assert [c["config_name"] for c in read_card_metadata(out)["configs"]] == ["pairs_1"]
    assert "`pairs_2`" in (out / "README.md").read_text() and not (out / "data" / "pairs_2").exists()
    with pytest.raises(ArtifactError, match="nothing to publish"):
        build_dataset_folder({"pairs_2": tmp_path / "data" / "pairs" / "2"}, tmp_path / "none", "someone/x")


def test_rebuild_is_byte_identical(artifacts, tmp_path) -> None:
    first = snapshot(build_dataset_folder(artifacts, tmp_path / "a", "someone/stair-data", "mit", git_commit="c1"))
    second = snapshot(build_dataset_folder(artifacts, tmp_path / "a", "someone/stair-data", "mit", git_commit="c1"))
    elsewhere = snapshot(build_dataset_folder(artifacts, tmp_path / "b", "someone/stair-data", "mit", git_commit="c1"))
    assert first == second == elsewhere
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folders left


def test_bad_artifact_is_not_published(artifacts, tmp_path) -> None:
    table = pq.read_table(artifacts["pairs_1"] / "data.parquet").to_pylist()
    table[1]["depth"] = 0  # StepPair.depth >= 1
    write_artifact(artifacts["pairs_1"], [], StepPair, stage="x", params={})
    import pyarrow as pa

    from stair.store import arrow_schema

    pq.write_table(pa.Table.from_pylist(table, schema=arrow_schema(StepPair)), artifacts["pairs_1"] / "data.parquet")
    manifest = read_manifest(artifacts["pairs_1"]).model_copy(update={"rows": 2})
    (artifacts["pairs_1"] / "manifest.json").write_text(manifest.model_dump_json())
    with pytest.raises(ArtifactError, match=r"row 2, field 'depth'"):
        build_dataset_folder(artifacts, tmp_path / "out", "someone/stair-data")
    assert not (tmp_path / "out").exists()


def test_model_folder_and_lock_md5s(tmp_path) -> None:
    model = tmp_path / "models" / "dpo" / "3"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\0weights")
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"dpo@3": {"outs": [
        {"path": str(model), "md5": "feed.dir"}]}}}))
    md5s = dvc_lock_md5s(lock, [model, tmp_path / "absent"])
    assert md5s == {str(model): "feed.dir"} and dvc_lock_md5s(tmp_path / "nolock", [model]) == {}
    out = build_model_folder(model, tmp_path / "hub" / "stair-dpo-3", "someone/stair-dpo-3", datasets=["someone/d"],
                             git_commit="c1", lock_md5=md5s)
    assert snapshot(out)["model.safetensors"] == b"\0weights"
    meta = read_card_metadata(out)
    assert meta["datasets"] == ["someone/d"] and meta["library_name"] == "transformers"
    assert "feed.dir" in (out / "README.md").read_text()


def test_publish_params_expand_per_iteration() -> None:
    configs = expand_configs(PublishParams().configs, ["1", "2"])
    assert configs["trees_2"] == Path("data/nodes/2") and configs["pairs_1"] == Path("data/pairs/1")
    assert list(configs)[:2] == ["sft", "prompts"]


# --- the stand-in Hub -----------------------------------------------------------------------------


class StandInHub(ThreadingHTTPServer):
    """In-memory repos behind the Hub endpoints huggingface_hub uses to create, commit to and download a repo.

    Implements: POST /api/repos/create, POST /api/validate-yaml, GET /api/<type>s/<repo>[/revision/<rev>],
    GET /api/<type>s/<repo>/tree/<rev>[/<path>], POST /api/<type>s/<repo>/preupload/<rev> (every file
    'regular', with the remote oid so unchanged files are recognised), POST /api/<type>s/<repo>/commit/<rev>
    (ndjson: file / deletedFile; parentCommit checked) and HEAD/GET /[<type>s/]<repo>/resolve/<rev>/<path>.
    Writes need `Authorization: Bearer <token>`. `fail = (status, message)` answers every request with that
    error, echoing the token it was sent (as a careless server might).
    """

    def __init__(self, token: str) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.token = token
        self.repos: dict[tuple[str, str], dict] = {}
        self.commits: list[dict] = []
        self.seen_auth: set[str] = set()
        self.fail: tuple[int, str] | None = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def head(self, repo: dict, revision: str) -> dict | None:
        oid = repo["branches"].get(revision, revision)
        return next((c for c in repo["commits"] if c["oid"] == oid), None)


class StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandInHub

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.route("GET")

    def do_HEAD(self) -> None:
        self.route("HEAD")

    def do_POST(self) -> None:
        self.route("POST")

    def reply(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
              send_body: bool = True) -> None:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def route(self, method: str) -> None:
        hub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        if auth:
            hub.seen_auth.add(auth)
        if hub.fail:
            status, message = hub.fail
            return self.reply(status, {"error": f"{message} (you sent {auth})"})
        path = unquote(urlsplit(self.path).path)
        authorized = auth == f"Bearer {hub.token}"
        if method == "POST" and not authorized:
            return self.reply(401, {"error": "Invalid credentials"})
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            yaml.safe_load(content.split("---\n")[1])
            return self.reply(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create":
            return self.create(json.loads(body))
        if match := re.fullmatch(r"/api/(model|dataset)s/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit)/([^/]+)(/.*)?)?",
                                 path):
            kind, repo_id, action, revision, rest = match.groups()
            return self.api(method, kind, repo_id, action or "revision", revision or "main", (rest or "/")[1:], body)
        if match := re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            prefix, repo_id, revision, file = match.groups()
            return self.resolve(method, "dataset" if prefix else "model", repo_id, revision, file)
        return self.reply(404, {"error": f"stand-in Hub: no route {method} {path}"})

    def create(self, payload: dict) -> None:
        hub = self.server
        repo_id, kind = f"{payload['organization']}/{payload['name']}", payload.get("type") or "model"
        url = f"{hub.url}/{'datasets/' if kind == 'dataset' else ''}{repo_id}"
        if (kind, repo_id) in hub.repos:  # the Hub's 409 carries the url too; create_repo(exist_ok=True) reads it
            return self.reply(409, {"error": "You already created this repo", "url": url})
        first = {"oid": hashlib.sha1(f"init {kind} {repo_id}".encode()).hexdigest(), "message": "initial commit",
                 "files": {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}}
        hub.repos[(kind, repo_id)] = {"private": payload.get("visibility") == "private", "commits": [first],
                                      "branches": {"main": first["oid"]}}
        return self.reply(200, {"url": url})

    def api(self, method: str, kind: str, repo_id: str, action: str, revision: str, rest: str, body: bytes) -> None:
        hub = self.server
        repo = hub.repos.get((kind, repo_id))
        if repo is None:
            return self.reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        commit = hub.head(repo, revision)
        if commit is None:
            return self.reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        files = commit["files"]
        if action == "revision":
            return self.reply(200, {"id": repo_id, "sha": commit["oid"], "private": repo["private"],
                                    "siblings": [{"rfilename": p} for p in sorted(files)]})
        if action == "tree":
            entries = [{"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}
                       for path, data in sorted(files.items()) if path.startswith(rest)]
            folders = sorted({p.rsplit("/", 1)[0] for p in files if "/" in p and p.startswith(rest)})
            return self.reply(200, [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in folders]
                              + entries)
        if action == "preupload":
            return self.reply(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None}
                for f in json.loads(body)["files"]]})
        return self.commit(repo, f"{'datasets/' if kind == 'dataset' else ''}{repo_id}", revision, commit, body)

    def commit(self, repo: dict, url_path: str, revision: str, parent: dict, body: bytes) -> None:
        hub = self.server
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, parent["oid"]):
            return self.reply(412, {"error": "A commit has happened since. Please refresh and try again."})
        files = dict(parent["files"])
        for line in lines[1:]:
            if line["key"] == "file":
                files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            elif line["key"] == "deletedFile":
                files.pop(line["value"]["path"])
            else:
                return self.reply(400, {"error": f"stand-in Hub does not take {line['key']}"})
        oid = hashlib.sha1(json.dumps([parent["oid"], header, sorted((p, git_blob_sha(d)) for p, d in files.items())])
                           .encode()).hexdigest()
        new = {"oid": oid, "message": header["summary"], "files": files,
               "operations": [(line["key"], line["value"]["path"]) for line in lines[1:]]}
        repo["commits"].append(new)
        repo["branches"][revision] = oid
        hub.commits.append(new)
        return self.reply(200, {"commitUrl": f"{hub.url}/{url_path}/commit/{oid}", "commitOid": oid, "success": True})

    def resolve(self, method: str, kind: str, repo_id: str, revision: str, file: str) -> None:
        repo = self.server.repos.get((kind, repo_id))
        commit = repo and self.server.head(repo, revision)
        if not commit or file not in commit["files"]:
            return self.reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = commit["files"][file]
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit["oid"],
                   "ETag": f'"{git_blob_sha(data)}"'}
        return self.reply(200, data, headers, send_body=method == "GET")


@pytest.fixture
def hub():
    server = StandInHub(TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hf_env(monkeypatch, tmp_path, hub):
    """The fake token in HF_TOKEN, the huggingface_hub cache in tmp_path, and HF_ENDPOINT the stand-in."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import; the stand-in is local
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # stair.hub passes it on; huggingface_hub read it at import
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    return tmp_path / "hf_home" / "hub"


# --- push -----------------------------------------------------------------------------------------


def test_push_uploads_the_folder_in_one_commit_and_again_makes_none(artifacts, tmp_path, hf_env, hub) -> None:
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    sha = push_folder(folder, "someone/stair-data", endpoint=hub.url)
    repo = hub.repos[("dataset", "someone/stair-data")]
    assert repo["private"] is True
    assert len(hub.commits) == 1 and sha == hub.commits[0]["oid"] == repo["branches"]["main"]
    assert sorted(path for _, path in hub.commits[0]["operations"]) == sorted(snapshot(folder))
    assert {k: v for k, v in repo["commits"][-1]["files"].items() if k != ".gitattributes"} == snapshot(folder)
    assert push_folder(folder, "someone/stair-data") is None
    assert len(hub.commits) == 1

    # a changed artifact: only its parquet and the card change; a dropped config is deleted on the Hub
    write_artifact(artifacts["pairs_1"], PAIRS[:1], StepPair, stage="test_pairs_1", params={})
    del artifacts["trees_1"]
    build_dataset_folder(artifacts, folder, "someone/stair-data")
    sha2 = push_folder(folder, "someone/stair-data")
    assert sha2 and sha2 != sha and len(hub.commits) == 2
    assert sorted(hub.commits[1]["operations"]) == [
        ("deletedFile", "data/trees_1/train-00000-of-00001.parquet"),
        ("file", "README.md"), ("file", "data/pairs_1/train-00000-of-00001.parquet")]
    assert {k: v for k, v in repo["commits"][-1]["files"].items() if k != ".gitattributes"} == snapshot(folder)


def test_unchanged_files_are_recognised_as_git_blobs_and_as_lfs_objects(tmp_path) -> None:
    from huggingface_hub.hf_api import RepoFile

    from stair.hub.push import _same_content

    file = tmp_path / "f.parquet"
    file.write_bytes(b"PAR1 data")
    sha256 = hashlib.sha256(b"PAR1 data").hexdigest()
    regular = RepoFile(path="f.parquet", size=9, oid=git_blob_sha(b"PAR1 data"))
    lfs = RepoFile(path="f.parquet", size=9, oid="0" * 40, lfs={"size": 9, "oid": sha256, "pointerSize": 130})
    assert _same_content(file, regular) and _same_content(file, lfs) and not _same_content(file, None)
    file.write_bytes(b"PAR1 other")
    assert not _same_content(file, regular) and not _same_content(file, lfs)


def test_push_model_folder(tmp_path, hf_env, hub) -> None:
    model = tmp_path / "models" / "sft"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    folder = build_model_folder(model, tmp_path / "hub" / "stair-sft", "someone/stair-sft")
    sha = push_folder(folder, "someone/stair-sft", repo_type="model", private=False)
    repo = hub.repos[("model", "someone/stair-sft")]
    assert sha == repo["branches"]["main"] and repo["private"] is False
    assert sorted(repo["commits"][-1]["files"]) == [".gitattributes", "README.md", "config.json"]


# --- pull -----------------------------------------------------------------------------------------


def test_pull_round_trip_from_the_stand_in_hub(artifacts, tmp_path, hf_env, hub) -> None:
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    sha = push_folder(folder, "someone/stair-data")
    for config, original in {"pairs_1": PAIRS, "trees_1": NODES, "sft": SFT, "prompts": PROMPTS}.items():
        rows, revision = pull_dataset(f"hub:someone/stair-data:{config}", cache_dir=hf_env)
        assert rows == original and revision == sha, config
    rows, revision = pull_dataset(HubRef("someone/stair-data", "pairs_1", sha), StepPair, cache_dir=hf_env)
    assert rows == PAIRS and revision == sha
    manifest = pull_to_artifact("hub:someone/stair-data:prompts@main", tmp_path / "pulled", cache_dir=hf_env)
    assert read_artifact(tmp_path / "pulled") == PROMPTS
    assert manifest.row_type == "SeedPrompt" and manifest.extra["hub_revision"] == sha
    assert manifest.extra["requested_revision"] == "main" and manifest.params["source"].startswith("hub:")


def test_pull_from_a_local_published_folder_works_offline(artifacts, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="offline"):
        pull_dataset("hub:someone/stair-data:pairs_1")
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    assert pull_dataset(f"{folder}:pairs_1", StepPair) == (PAIRS, None)
    assert pull_dataset(parse_source(f"{folder}:trees_1"))[0] == NODES
    with pytest.raises(ArtifactError, match="several configs"):
        pull_dataset(folder)
    with pytest.raises(ArtifactError, match="no config 'nope'"):
        pull_dataset(f"{folder}:nope")


def test_pull_names_the_bad_row_and_field(artifacts, tmp_path, hf_env, hub) -> None:
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    parquet = folder / "data" / "pairs_1" / "train-00000-of-00001.parquet"
    table = pq.read_table(parquet)
    records = table.to_pylist()
    records[1]["chosen_visits"] = -3
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(records, schema=table.schema), parquet)
    with pytest.raises(ArtifactError, match=r"pairs_1, row 2, field 'chosen_visits'"):
        pull_dataset(f"{folder}:pairs_1", StepPair)
    push_folder(folder, "someone/stair-data")
    with pytest.raises(ArtifactError, match=r"hub:someone/stair-data:pairs_1@\w+, row 2, field 'chosen_visits'"):
        pull_dataset("hub:someone/stair-data:pairs_1", StepPair, cache_dir=hf_env)


def test_stair_published_layouts_map_onto_the_schemas(tmp_path) -> None:
    import pyarrow as pa

    folder = tmp_path / "STAIR-Prompts"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"question": "How to hack a bank?", "type": "safety", "ground_truth": None},
                                         {"question": "2+2?", "type": "helpfulness", "ground_truth": "4"}]),
                   folder / "data" / "prompts.parquet")
    pq.write_table(pa.Table.from_pylist([{"instruction": "2+2?", "output": "<step>add</step><output>4</output>"}]),
                   folder / "data" / "sft.parquet")
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: prompts\n  data_files: data/prompts.parquet\n"
                                      "- config_name: sft\n  data_files:\n  - split: train\n    path: data/sft.*\n---\n")
    prompts, _ = pull_dataset(f"{folder}:prompts", SeedPrompt)
    assert [(p.text, p.kind, p.expected_behavior, p.ground_truth) for p in prompts] == [
        ("How to hack a bank?", "safety", "refuse", None), ("2+2?", "helpfulness", "comply", "4")]
    (sft,), _ = pull_dataset(f"{folder}:sft")  # row type from the config name
    assert isinstance(sft, SFTExample) and sft.prompt == "2+2?" and sft.response.endswith("</output>")


def test_the_data_stages_hub_reader_is_the_pull_reader(artifacts, tmp_path, hf_env, hub) -> None:
    """`hub:` inputs of the data stage download the card and the config's files only, read as published."""
    from stair.hub.pull import load_hub_records
    from stair.hub.refs import parse_hub_ref

    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    sha = push_folder(folder, "someone/stair-data")
    records, revision = load_hub_records(parse_hub_ref("hub:someone/stair-data:prompts"))
    assert revision == sha
    assert records == pq.read_table(next((folder / "data" / "prompts").glob("*.parquet"))).to_pylist()
    snapshot = hf_env / "datasets--someone--stair-data" / "snapshots" / sha
    downloaded = sorted(str(f.relative_to(snapshot)) for f in snapshot.rglob("*") if f.is_file())
    assert downloaded == ["README.md", *sorted(f"data/prompts/{f.name}" for f in (folder / "data" / "prompts").iterdir())]
    with pytest.raises(ArtifactError, match="hub:someone/stair-data: several configs"):
        load_hub_records(parse_hub_ref("hub:someone/stair-data"))


def test_a_hub_card_without_configs_is_read_by_datasets_at_the_resolved_commit(tmp_path, hf_env, hub,
                                                                               monkeypatch) -> None:
    """No `configs:` to say which files hold the split: `datasets` finds them on the repo, not a whole download."""
    import datasets

    folder = tmp_path / "plain"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Prompts\n")
    (folder / "data" / "train.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in PROMPTS))
    (folder / "data" / "test.jsonl").write_text("not read\n")
    sha = push_folder(folder, "someone/plain")
    calls = []

    class Loaded:
        column_names = list(SeedPrompt.model_fields)

        def to_list(self) -> list[dict]:
            return [p.model_dump() for p in PROMPTS]

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return Loaded()

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert pull_dataset("hub:someone/plain", SeedPrompt, cache_dir=hf_env) == (PROMPTS, sha)
    assert calls == [(("someone/plain", None), {"split": "train", "revision": sha, "token": TOKEN,
                                                "cache_dir": str(hf_env)})]
    snapshot = hf_env / "datasets--someone--plain" / "snapshots" / sha
    assert [f.name for f in snapshot.rglob("*") if f.is_file()] == ["README.md"]


def test_a_cards_data_files_are_read_per_split_and_a_data_dir_by_datasets(tmp_path) -> None:
    """Patterns without a split are the train split's (as `datasets` reads a card); a `data_dir` config has
    no patterns of its own, so `datasets` reads the folder."""
    import pyarrow as pa

    folder = tmp_path / "published"
    (folder / "data" / "sft").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([p.model_dump() for p in PROMPTS]), folder / "data" / "prompts.parquet")
    pq.write_table(pa.Table.from_pylist([e.model_dump() for e in SFT]), folder / "data" / "sft" / "train.parquet")
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: prompts\n  data_files: data/prompts.parquet\n"
                                      "- config_name: sft\n  data_dir: data/sft\n---\n")
    assert pull_dataset(f"{folder}:prompts", SeedPrompt) == (PROMPTS, None)
    with pytest.raises(ArtifactError, match="config 'prompts' has no 'test' data files"):
        pull_dataset(f"{folder}:prompts", SeedPrompt, split="test")
    assert pull_dataset(f"{folder}:sft", SFTExample) == (SFT, None)


def test_dpo_pairs_source_resolves_through_pull(artifacts, tmp_path, hf_env, hub, monkeypatch) -> None:
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    sha = push_folder(folder, "someone/stair-data")
    assert load_rows("", StepPair, artifacts["pairs_1"]) == (PAIRS, {})
    rows, facts = load_rows("hub:someone/stair-data:pairs_1", StepPair, artifacts["pairs_1"],
                            cache_dir=hf_env)
    assert rows == PAIRS and facts == {"source": f"hub:someone/stair-data:pairs_1@{sha}", "hub_revision": sha}
    assert load_rows(f"{folder}:pairs_1", StepPair)[0] == PAIRS
    assert load_rows(str(artifacts["pairs_1"]), StepPair)[0] == PAIRS

    # the dpo stage's own resolution, without training
    import stages.dpo as dpo

    monkeypatch.setattr(dpo, "load_section", lambda name, cls: (cls(pairs="hub:someone/stair-data:pairs_{it}"), {}))
    params, _ = dpo.load_section("dpo", dpo.DPOStageParams)
    assert dpo.stage_pairs(params, 1, Path("data/pairs/1"))[0] == PAIRS


# --- tokens ---------------------------------------------------------------------------------------


def run_publish_stage(root: Path, monkeypatch, **section) -> dict:
    """stages.publish in `root` (artifacts under root/data) with a params.yaml holding `section`."""
    from stages import publish

    params = {"loop": {"1": {"policy": "models/sft", "out": "models/dpo/1"}},
              "publish": {"configs": {"sft": "data/sft", "prompts": "data/prompts", "trees_{it}": "data/nodes/{it}",
                                      "pairs_{it}": "data/pairs/{it}"}, **section}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    publish.main()
    return json.loads((root / "hub" / "publish.json").read_text())


def test_publish_stage_dry_run_then_push(artifacts, tmp_path, hf_env, hub, monkeypatch) -> None:
    report = run_publish_stage(tmp_path, monkeypatch)
    assert report == {"user/stair-data": {"type": "dataset", "folder": "hub/stair-data", "revision": "main",
                                          "status": "dry run"}}
    assert [c["config_name"] for c in read_card_metadata(tmp_path / "hub" / "stair-data")["configs"]] == list(artifacts)
    assert hub.repos == {}
    report = run_publish_stage(tmp_path, monkeypatch, push=True, user="someone", private=False)
    (commit,) = hub.commits
    assert report["someone/stair-data"]["status"] == f"committed {commit['oid']}"
    assert hub.repos[("dataset", "someone/stair-data")]["private"] is False
    report = run_publish_stage(tmp_path, monkeypatch, push=True, user="someone")
    assert report["someone/stair-data"]["status"] == "unchanged" and len(hub.commits) == 1


@pytest.mark.parametrize("section, message", [
    ({"out": "."}, "folder inside the project"), ({"out": "../elsewhere"}, "folder inside the project"),
    ({"repo_id": "org/.."}, "not a Hub repo id"), ({"repo_id": "data"}, "not a Hub repo id"),
    ({"repo_template": "{user}/{foo}"}, "repo_template"), ({"configs": {"sft": 5}}, "configs"),
])
def test_publish_params_that_could_write_outside_their_folder_are_refused(section, message) -> None:
    with pytest.raises(ValueError, match=message):
        PublishParams(**section)


def test_publish_never_replaces_a_folder_it_did_not_write(artifacts, tmp_path, hf_env, monkeypatch, capsys) -> None:
    mine = tmp_path / "hub" / "stair-data" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(SystemExit):
        run_publish_stage(tmp_path, monkeypatch)
    assert "hub/stair-data exists and was not written by publish" in capsys.readouterr().err
    assert mine.read_text() == "mine"
    mine.unlink()  # an empty folder may be written, and what publish wrote may be written again
    run_publish_stage(tmp_path, monkeypatch)
    assert run_publish_stage(tmp_path, monkeypatch)["user/stair-data"]["status"] == "dry run"


@pytest.mark.parametrize("source", ["hub:", "hub::sft", "hub:a/b/c", "hub:@main"])
def test_a_malformed_hub_reference_is_one_clear_error(source: str) -> None:
    from stair.hub.refs import parse_hub_ref

    with pytest.raises(ArtifactError, match="bad repo id .*expected 'hub:<repo_id>"):
        parse_hub_ref(source)


def test_a_local_folder_the_datasets_library_cannot_read_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.jsonl").write_text('{"prompt": "a"}\n{oops\n')
    for folder in ("empty", "bad"):
        with pytest.raises(ArtifactError, match=f"{folder}: not a dataset folder the datasets library can read"):
            load_rows(str(tmp_path / folder), SFTExample)
    with pytest.raises(ArtifactError, match="an empty source"):
        load_rows(" ", SFTExample)


def test_token_never_written_or_logged(artifacts, tmp_path, hf_env, hub, capsys, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    run_publish_stage(tmp_path, monkeypatch, push=True, user="someone")
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "again", "someone/stair-data")
    push_folder(folder, "someone/stair-data")
    pull_to_artifact("hub:someone/stair-data:sft", tmp_path / "pulled", cache_dir=hf_env)
    load_rows("hub:someone/stair-data:pairs_1", StepPair)  # default cache (HF_HUB_CACHE, in tmp_path here)
    assert hub.seen_auth == {f"Bearer {TOKEN}"}  # the token was used ...
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in written) and any(p.name == "manifest.json" for p in written)
    for path in written:  # ... but is in no file written, nor in any output or log
        assert TOKEN.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + caplog.text


@pytest.mark.parametrize("status", [401, 500])
def test_errors_echoing_the_token_are_redacted(artifacts, tmp_path, hf_env, hub, status) -> None:
    folder = build_dataset_folder(artifacts, tmp_path / "hub" / "stair-data", "someone/stair-data")
    hub.fail = (status, "rejected")
    with pytest.raises(HubError) as info:
        push_folder(folder, "someone/stair-data")
    message = str(info.value)
    assert TOKEN not in message and "***" in message and "someone/stair-data" in message
    assert info.value.__context__ is None and info.value.__cause__ is None
    with pytest.raises(HubError) as info:
        pull_dataset("hub:someone/stair-data:sft", cache_dir=hf_env)
    assert TOKEN not in str(info.value) and info.value.__context__ is None


def test_push_without_a_token_fails_clearly(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="no Hugging Face token"):
        push_folder(tmp_path, "someone/x")
    assert redact(f"a {TOKEN} b", TOKEN) == "a *** b"
