"""Resumable searches: finished trees are appended to a JSONL checkpoint as they complete.

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

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
