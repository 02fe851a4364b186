"""Row types of the pipeline's datasets. Field names are the column names in parquet and DuckDB."""

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Kind = Literal["safety", "helpfulness"]
Behavior = Literal["comply", "refuse"]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is blank (only whitespace)")
    return text


# A text a model reads or writes: whitespace alone is no prompt, answer or id.
Text = Annotated[str, AfterValidator(_not_blank)]


class _Row(BaseModel):
    # NaN and infinity are no values in a dataset: a missing one is null.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # The field no two rows of one artifact may share (checked by `stair.store.validate_rows`), if any.
    unique_key: ClassVar[str | None] = None


class SeedPrompt(_Row):
    """A request: SFT prompt, SI-MCTS seed, or evaluation item."""

    unique_key: ClassVar[str | None] = "id"

    id: Text = Field(min_length=1)
    text: Text = Field(min_length=1)
    kind: Kind = Field(description="safety: judged mainly on harm; helpfulness: on task quality")
    ground_truth: str | None = Field(None, description="verifiable answer or reference key phrase")
    expected_behavior: Behavior | None = Field(None, description="comply or refuse, where known")
    source: str = Field(min_length=1, description="'builtin', a file path or a Hub id")
    split: str = Field(min_length=1, description="'sft', 'iter_<k>', 'heldout' or a benchmark split")
    group: str = Field("", description="world group: math, harmful, jailbreak, benign_sensitive, ...")
    category: str | None = Field(None, description="risk category or task type")
    framing: str | None = Field(None, description="jailbreak framing wrapped around the request")


class SFTExample(_Row):
    """A prompt with a structured-CoT teacher response (steps then output)."""

    unique_key: ClassVar[str | None] = "id"

    id: Text = Field(min_length=1)
    prompt_id: Text = Field(min_length=1)
    prompt: Text = Field(min_length=1)
    response: Text = Field(min_length=1)
    kind: Kind
    source: str = Field(min_length=1)


class TreeNode(_Row):
    """One reasoning step in an SI-MCTS tree. The root (node_id 0) holds no step."""

    tree_id: str
    prompt_id: str
    iteration: int = Field(ge=0)
    kind: Kind
    node_id: int = Field(ge=0)
    parent_id: int | None = Field(None, description="None only for the root")
    depth: int = Field(ge=0)
    step: str = Field(description="the step text, tags included; '' for the root")
    n_tokens: int = Field(ge=0, description="tokens of prompt + prefix steps + this step")
    visits: int = Field(ge=0, description="evaluations of this node and of every node below it")
    evaluations: int = Field(ge=0, description="times this node itself was evaluated (rollout or terminal)")
    value_sum: float
    value: float = Field(description="mean backed-up reward, value_sum / visits (0 when unvisited)")
    terminal: bool = Field(description="the step closes the final output (or generation gave up)")
    reward: float | None = Field(None, description="reward of the final answer evaluated at this node")
    safety: float | None = None
    helpfulness: float | None = None
    rollout: str | None = Field(None, description="the continuation sampled to evaluate this (non-terminal) node")
    rollout_reward: float | None = Field(None, description="reward of prefix + rollout, as judged")

    @model_validator(mode="after")
    def _root_has_no_parent(self) -> "TreeNode":
        if (self.parent_id is None) != (self.node_id == 0):
            raise ValueError("parent_id must be None exactly for the root (node_id 0)")
        return self


class StepPair(_Row):
    """Two sibling steps (same prompt and prefix) with clearly different values."""

    prompt_id: str
    prompt: str = Field(description="the user request")
    prefix: list[str] = Field(description="shared steps before the pair, tags included")
    chosen: str
    rejected: str
    chosen_value: float
    rejected_value: float
    chosen_visits: int = Field(ge=0)
    rejected_visits: int = Field(ge=0)
    chosen_terminal: bool
    rejected_terminal: bool
    depth: int = Field(ge=1, description="depth of the chosen/rejected steps (1 = first step)")
    iteration: int = Field(ge=0)
    kind: Kind


class PRMExample(_Row):
    """A partial response labelled with the value of its last step."""

    prompt_id: str
    prompt: str
    steps: list[str] = Field(min_length=1, description="steps up to and including the labelled one")
    label: float = Field(ge=0.0, le=1.0, description="value scaled to [0, 1] by the reward's range")
    hard_label: int = Field(ge=0, le=1)
    value: float
    visits: int = Field(ge=0)
    kind: Kind
    iteration: int = Field(ge=0)
    split: str = Field("train", description="train, or validation (trees held out from PRM training)")
    source: Literal["node", "rollout"] = Field(
        "node", description="node: a tree step and its value; rollout: a node's rollout, labelled by its reward")


class EvalRecord(_Row):
    """One judged response of one model (and search method) to one evaluation prompt."""

    prompt_id: str
    suite: str
    model: str
    method: str = Field("greedy", description="greedy, bon, beam, ...")
    budget: int = Field(1, ge=1)
    prompt: str
    response: str
    output: str | None = Field(None, description="the final answer, if the response has one")
    format_ok: bool
    refused: bool
    safety: float = Field(ge=-1.0, le=1.0)
    helpfulness: float = Field(ge=-1.0, le=1.0)
    reward: float
    correct: bool | None = Field(None, description="for verifiable prompts")
    expected_behavior: Behavior | None = None
    group: str = ""
    framing: str | None = Field(None, description="jailbreak framing wrapped around the prompt, if any")
    safety_reason: str = ""
    helpfulness_reason: str = ""
    n_tokens: int = Field(0, ge=0, description="generated tokens spent on this prompt")
