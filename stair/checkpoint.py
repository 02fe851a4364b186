"""Resumable stages. SI-MCTS (`TreeCheckpoint`): finished trees are appended to a JSONL checkpoint as they
complete, and the whole search state (partial trees with their random streams, the waiting order, the
backend's sampling state) is replaced atomically every so often. Stages whose work splits into units
(search: one method at one budget; eval: one model) save each finished unit's rows and the backend's
sampling state after it (`UnitCheckpoint`, `run_units`).

A checkpoint is keyed by a fingerprint of everything that determines its results (params, models,
prompts); a checkpoint with another fingerprint is discarded, never mixed with new results. A line cut
short by a kill is ignored.
"""

import json
import logging
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from schemas import TreeNode
from stair.generation import Backend, restore_sampling_state, sampling_state
from stair.store import atomic_write_text, file_md5, params_hash

# Set to k, the search process kills itself (SIGKILL) right after checkpointing its k-th finished tree:
# the resume tests kill at a known point instead of racing a running search.
KILL_AFTER_TREES = "STAIR_KILL_AFTER_TREES"

log = logging.getLogger(__name__)
Row = TypeVar("Row", bound=BaseModel)


def stage_fingerprint(params: dict, models: Sequence[Path], rows: Sequence[BaseModel]) -> str:
    """A key for everything a stage's results depend on: its params, its model folders' files, its input rows."""
    return params_hash({"params": params, "models": {str(m): file_md5(Path(m)) for m in models},
                        "rows": [r.model_dump() for r in rows]})


def _claim(folder: Path, fingerprint: str) -> Path:
    """`folder`, emptied first if a run with other inputs (another fingerprint) left it."""
    folder = Path(folder)
    key_file = folder / "fingerprint"
    if folder.exists() and (not key_file.exists() or key_file.read_text() != fingerprint):
        log.info("discarding checkpoint %s: made with other inputs", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key_file.write_text(fingerprint)
    return folder


class TreeCheckpoint:
    """A checkpoint folder; each writer appends to its own file (`name`), `load` reads them all."""

    def __init__(self, folder: Path, fingerprint: str, name: str = "trees.jsonl"):
        self.folder = _claim(folder, fingerprint)
        self.file = self.folder / name
        self.state_file = self.folder / name.replace("trees", "state", 1).replace(".jsonl", ".json")
        self.saved = 0

    def load(self) -> dict[str, list[TreeNode]]:
        """Finished trees by tree id."""
        trees: dict[str, list[TreeNode]] = {}
        for file in sorted(self.folder.glob("trees*.jsonl")):
            for line in file.read_text().splitlines():
                try:
                    rows = [TreeNode.model_validate(r) for r in json.loads(line)]
                except (json.JSONDecodeError, ValueError):
                    log.warning("ignoring a partial line in %s (the last run was killed mid-write)", file)
                    continue
                trees[rows[0].tree_id] = rows
        return trees

    def save(self, rows: list[TreeNode]) -> None:
        line = json.dumps([r.model_dump() for r in rows]) + "\n"
        with open(self.file, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.saved += 1
        if self.saved == int(os.environ.get(KILL_AFTER_TREES, 0)):
            os.kill(os.getpid(), signal.SIGKILL)  # a kill at a known point, for the resume tests

    def load_state(self) -> dict | None:
        """The last saved search state of this writer, or None if it saved none."""
        if not self.state_file.exists():
            return None
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict) -> None:
        """Replace the search state atomically (a kill mid-write leaves the previous one)."""
        tmp = self.state_file.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_file)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class UnitCheckpoint:
    """A checkpoint folder holding one file per finished unit (`<key>.json`): its rows and the backend's
    sampling state after it. Each file is written atomically, so a kill leaves whole units only."""

    def __init__(self, folder: Path, fingerprint: str, row_type: type[Row]):
        self.folder = _claim(folder, fingerprint)
        self.row_type = row_type

    def load(self, key: str) -> tuple[list[Row], dict | None] | None:
        """The rows of unit `key` and the sampling state after it, or None if no run finished it."""
        file = self.folder / f"{key}.json"
        if not file.exists():
            return None
        saved = json.loads(file.read_text())
        return [self.row_type.model_validate(r) for r in saved["rows"]], saved["sampling_state"]

    def save(self, key: str, rows: Sequence[BaseModel], state: dict | None) -> None:
        # json.dumps, not model_dump_json: floats (NaN too) must come back exactly as they were.
        payload = {"key": key, "rows": [r.model_dump() for r in rows], "sampling_state": state}
        atomic_write_text(self.folder / f"{key}.json", json.dumps(payload))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def run_units(units: dict[str, Callable[[], list[Row]]], checkpoint: UnitCheckpoint, backend: Backend | None = None,
              on_unit: Callable[[str], None] = lambda key: None) -> dict[str, list[Row]]:
    """Run each unit in order (key -> its rows), or take its rows from `checkpoint` if a run finished it.

    After each unit its rows are saved with the sampling state of `backend` (the one backend the units
    share; None if each unit makes its own). A resumed run restores the state saved after the last
    finished unit before it runs the next, so it draws the samples an uninterrupted run would and
    returns the same rows. `on_unit` sees the key of each unit run here once it is saved (a test's kill
    switch).
    """
    done: dict[str, list[Row]] = {}
    state = None
    for key, run in units.items():
        saved = checkpoint.load(key)
        if saved is not None:
            done[key], state = saved
            log.info("%s: finished by an earlier run, taken from %s", key, checkpoint.folder)
            continue
        if state is not None:
            restore_sampling_state(backend, state)
            state = None
        done[key] = run()
        checkpoint.save(key, done[key], sampling_state(backend) if backend is not None else None)
        on_unit(key)
    return done
