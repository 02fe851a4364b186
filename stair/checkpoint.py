"""Resumable searches: finished trees are appended to a JSONL checkpoint as they complete, and the whole
search state (partial trees with their random streams, the waiting order, the backend's sampling state)
is replaced atomically every so often.

The checkpoint is keyed by a fingerprint of everything that determines the trees (params, policy,
prompts); a checkpoint with another fingerprint is discarded. A line cut short by a kill is ignored.
"""

import json
import logging
import os
import shutil
from pathlib import Path

from schemas import TreeNode

log = logging.getLogger(__name__)


class TreeCheckpoint:
    """A checkpoint folder; each writer appends to its own file (`name`), `load` reads them all."""

    def __init__(self, folder: Path, fingerprint: str, name: str = "trees.jsonl"):
        self.folder = Path(folder)
        self.file = self.folder / name
        self.state_file = self.folder / name.replace("trees", "state", 1).replace(".jsonl", ".json")
        key_file = self.folder / "fingerprint"
        if self.folder.exists() and (not key_file.exists() or key_file.read_text() != fingerprint):
            log.info("discarding checkpoint %s: made with other inputs", self.folder)
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file.write_text(fingerprint)

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
