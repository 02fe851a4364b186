"""The manifest written beside every artifact: what it is, how many rows, and where it came from."""

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"


class InputRef(BaseModel):
    """One input an artifact was made from, with a content hash so lineage can be checked."""

    model_config = ConfigDict(extra="forbid")

    path: str
    md5: str


class ArtifactManifest(BaseModel):
    """Lineage of one artifact. Deliberately has no timestamp: same inputs give a byte-identical manifest."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    artifact: str = Field(description="artifact name, e.g. 'prompts' or 'nodes_1'")
    row_type: str = Field(description="class name in `schemas` that every row validates against")
    rows: int = Field(ge=0)
    stage: str = Field(description="the DVC stage that wrote it")
    params_hash: str = Field(description="sha256 of the stage's params section (sorted JSON)")
    params: dict = Field(default_factory=dict, description="the stage's params section")
    inputs: list[InputRef] = Field(default_factory=list)
    extra: dict = Field(default_factory=dict, description="stage-specific facts (e.g. a resolved Hub revision)")
