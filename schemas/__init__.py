"""Artifact contracts of the STAIR pipeline: one pydantic model per artifact row, plus the manifest.

Every stage reads and writes rows of these types through `stair.store`, which validates them at
the boundary. `json_schema(name)` exports a row type's JSON Schema for dataset cards.
"""

from schemas.manifest import SCHEMA_VERSION, ArtifactManifest, InputRef
from schemas.rows import (
    EvalRecord,
    PRMExample,
    SeedPrompt,
    SFTExample,
    StepPair,
    TreeNode,
)

ROW_TYPES = {
    model.__name__: model for model in (SeedPrompt, SFTExample, TreeNode, StepPair, PRMExample, EvalRecord)
}


def json_schema(row_type: str) -> dict:
    """JSON Schema of one row type, by its class name (for dataset cards and external tools)."""
    return ROW_TYPES[row_type].model_json_schema()


__all__ = [
    "SCHEMA_VERSION",
    "ROW_TYPES",
    "ArtifactManifest",
    "EvalRecord",
    "InputRef",
    "PRMExample",
    "SFTExample",
    "SeedPrompt",
    "StepPair",
    "TreeNode",
    "json_schema",
]
