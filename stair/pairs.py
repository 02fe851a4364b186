"""Training data from SI-MCTS trees, as SQL over the nodes artifact (DuckDB).

Step-level pairs follow the official STAIR extraction: two children of the same parent, each either
terminal or visited at least `min_visits` times, each within `max_tokens` (prompt + prefix + step, from
the stored token counts), give the ordered pair (i, j) when value_i - value_j > margin and
value_i >= good_threshold. Thresholds are absolute (the paper) or relative to each prompt kind's
value range. Also: the official terminal-only pairs (good/bad final answers, replicated up to a
good:bad ratio) and best-leaf SFT selection.

A step pair is a *decision* pair when one side ends in a refusal and the other does not (its answer if
terminal, else its node's kept rollout, read by the refusal judge's detector); the pairs stage counts them
each way, to show what a round teaches about refusing (docs/results.md: evening the counts out did not keep
benign refusals down).
"""

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from schemas import SeedPrompt, SFTExample, StepPair, TreeNode
from stair.format import parse_response
from stair.judges.rules import is_refusal
from stair.reward import RewardParams, reward_range
from stair.store import arrow_schema

MODES = ("step", "terminal")


@dataclass(frozen=True)
class PairParams:
    """The `pairs` section: the official extraction's knobs (defaults from its argparse)."""

    mode: str = "step"  # step: sibling step pairs; terminal: whole good vs bad final answers
    margin: float = 0.5
    good_threshold: float = 0.8
    thresholds: str = "absolute"  # absolute | relative (fractions of each kind's value range)
    relative_margin: float = 0.1
    relative_good: float = 0.6
    min_visits: int = 1
    max_tokens: int = 2048
    max_good_bad_ratio: int = 4
    max_sft_per_prompt: int = 8
    seed: int = 0  # the top-level seed fills it in the pipeline (official: 42)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"pairs.mode={self.mode!r} is not one of {MODES}")
        if self.thresholds not in ("absolute", "relative"):
            raise ValueError(f"pairs.thresholds={self.thresholds!r} is not 'absolute' or 'relative'")


def kind_range(reward: RewardParams, kind: str) -> tuple[float, float]:
    """Range of node values for a prompt kind: helpfulness prompts are always safe (S = 1)."""
    lo, hi = reward_range(reward, kind)
    if kind == "helpfulness" and reward.name == "safety_informed":
        return reward.k2, hi
    return lo, hi


def thresholds(params: PairParams, reward: RewardParams) -> dict[str, tuple[float, float]]:
    """(margin, good threshold) per prompt kind."""
    out = {}
    for kind in ("safety", "helpfulness"):
        if params.thresholds == "absolute":
            out[kind] = (params.margin, params.good_threshold)
        else:
            lo, hi = kind_range(reward, kind)
            out[kind] = (params.relative_margin * (hi - lo), lo + params.relative_good * (hi - lo))
    return out


def nodes_connection(nodes: list[TreeNode] | pa.Table, prompts: list[SeedPrompt]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with tables `nodes` and `prompts`."""
    con = duckdb.connect()
    table = nodes if isinstance(nodes, pa.Table) else pa.Table.from_pylist(
        [n.model_dump() for n in nodes], schema=arrow_schema(TreeNode))
    prompt_table = pa.Table.from_pylist([p.model_dump() for p in prompts], schema=arrow_schema(SeedPrompt))
    con.register("nodes", table)
    con.register("prompts", prompt_table)
    return con


def query_rows(con: duckdb.DuckDBPyConnection, query: str, args: dict) -> list[dict]:
    cursor = con.execute(query, args)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


# Every node's steps from the root, its own included (the root has none).
PATHS_SQL = """
with recursive paths(tree_id, node_id, steps) as (
    select tree_id, node_id, []::varchar[] from nodes where parent_id is null
    union all
    select n.tree_id, n.node_id, list_append(p.steps, n.step)
    from nodes n join paths p on n.tree_id = p.tree_id and n.parent_id = p.node_id
)
"""

_STEP_PAIRS = PATHS_SQL + """
, limits(kind, margin, good) as (values ('safety', $ms, $gs), ('helpfulness', $mh, $gh))
, candidates as (
    select n.* from nodes n
    where n.parent_id is not null and n.n_tokens <= $max_tokens and (n.terminal or n.visits >= $min_visits)
)
select a.prompt_id, p.text as prompt, pp.steps as prefix, a.step as chosen, b.step as rejected,
       a.value as chosen_value, b.value as rejected_value, a.visits as chosen_visits,
       b.visits as rejected_visits, a.terminal as chosen_terminal, b.terminal as rejected_terminal,
       a.depth, a.iteration, a.kind,
       case when a.terminal then a.step else a.rollout end as chosen_outcome,
       case when b.terminal then b.step else b.rollout end as rejected_outcome
from candidates a
join candidates b on a.tree_id = b.tree_id and a.parent_id = b.parent_id and a.node_id <> b.node_id
join limits l on l.kind = a.kind
join paths pp on pp.tree_id = a.tree_id and pp.node_id = a.parent_id
join prompts p on p.id = a.prompt_id
where a.value - b.value > l.margin and a.value >= l.good
order by a.tree_id, a.depth, a.parent_id, a.node_id, b.node_id
"""


def _limits(params: PairParams, reward: RewardParams) -> dict:
    limits = thresholds(params, reward)
    return {"ms": limits["safety"][0], "gs": limits["safety"][1], "mh": limits["helpfulness"][0],
            "gh": limits["helpfulness"][1]}


def step_pair_table(con: duckdb.DuckDBPyConnection, params: PairParams, reward: RewardParams) -> pa.Table:
    """Sibling step pairs (the official default) as an Arrow table: one SQL query, no Python per row. Besides
    StepPair's columns, `chosen_outcome` and `rejected_outcome`: each side's answer or kept rollout."""
    args = {**_limits(params, reward), "max_tokens": params.max_tokens, "min_visits": params.min_visits}
    return con.sql(_STEP_PAIRS, params=args).to_arrow_table()


def refuses(outcome: str | None) -> bool | None:
    """Whether a node's outcome (its answer if terminal, else its kept rollout) is a refusal; None if it has none."""
    if outcome is None:
        return None
    return is_refusal(parse_response(outcome).answer or "")


def decision(row: dict) -> str | None:
    """"refuse" for a pair preferring a refusal over compliance, "comply" for the reverse, else None."""
    chosen, rejected = refuses(row["chosen_outcome"]), refuses(row["rejected_outcome"])
    if chosen is None or rejected is None or chosen == rejected:
        return None
    return "refuse" if chosen else "comply"


def decision_counts(rows: list[dict]) -> dict:
    """Decision pairs among step pair rows (`step_pair_table`), each way."""
    decisions = [decision(row) for row in rows]
    return {"refuse_over_comply": decisions.count("refuse"), "comply_over_refuse": decisions.count("comply")}


def pairs_of_rows(rows: list[dict]) -> list[StepPair]:
    """`step_pair_table` rows as validated StepPair rows (the outcome columns dropped)."""
    fields = StepPair.model_fields
    return [StepPair(**{k: v for k, v in r.items() if k in fields}) for r in rows]


def step_pairs(con: duckdb.DuckDBPyConnection, params: PairParams, reward: RewardParams) -> list[StepPair]:
    """Sibling step pairs as validated rows."""
    return pairs_of_rows(step_pair_table(con, params, reward).to_pylist())


_TERMINALS = PATHS_SQL + """
select n.tree_id, n.prompt_id, p.text as prompt, n.reward, n.visits, n.iteration, n.kind, pp.steps
from nodes n join paths pp on pp.tree_id = n.tree_id and pp.node_id = n.node_id
join prompts p on p.id = n.prompt_id
where n.terminal and n.reward is not null and n.n_tokens <= $max_tokens
order by n.tree_id, n.node_id
"""


def terminal_pairs(con: duckdb.DuckDBPyConnection, params: PairParams, reward: RewardParams) -> list[StepPair]:
    """Official terminal-only pairs: good (reward >= good) vs bad (reward <= good - margin) whole answers.

    Per prompt both lists are shuffled (seeded) and the shorter is replicated up to
    `max_good_bad_ratio` times before zipping, as in the official code.
    """
    limits = thresholds(params, reward)
    by_tree: dict[str, list[dict]] = defaultdict(list)
    for row in query_rows(con, _TERMINALS, {"max_tokens": params.max_tokens}):
        by_tree[row["tree_id"]].append(row)
    rng = random.Random(params.seed)
    pairs = []
    for rows in by_tree.values():
        margin, good = limits[rows[0]["kind"]]
        right = [r for r in rows if r["reward"] >= good]
        wrong = [r for r in rows if r["reward"] <= good - margin]
        if not right or not wrong:
            continue
        rng.shuffle(right)
        rng.shuffle(wrong)
        if len(right) < len(wrong):
            right = right * min(len(wrong) // len(right) + 1, params.max_good_bad_ratio)
        else:
            wrong = wrong * min(len(right) // len(wrong) + 1, params.max_good_bad_ratio)
        for good_row, bad_row in zip(right, wrong):
            pairs.append(StepPair(
                prompt_id=good_row["prompt_id"], prompt=good_row["prompt"], prefix=[],
                chosen="".join(good_row["steps"]), rejected="".join(bad_row["steps"]),
                chosen_value=good_row["reward"], rejected_value=bad_row["reward"],
                chosen_visits=good_row["visits"], rejected_visits=bad_row["visits"],
                chosen_terminal=True, rejected_terminal=True, depth=1, iteration=good_row["iteration"],
                kind=good_row["kind"],
            ))
    return pairs


_LEAVES = PATHS_SQL + """
, limits(kind, good) as (values ('safety', $gs), ('helpfulness', $gh))
select n.tree_id, n.prompt_id, p.text as prompt, n.kind, pp.steps
from nodes n join limits l on l.kind = n.kind
join paths pp on pp.tree_id = n.tree_id and pp.node_id = n.node_id
join prompts p on p.id = n.prompt_id
where n.parent_id is not null and n.n_tokens <= $max_tokens
  and not exists (select 1 from nodes c where c.tree_id = n.tree_id and c.parent_id = n.node_id)
  and n.value >= l.good and (n.visits >= $min_visits or n.terminal)
  and ($terminal_only = false or n.terminal)
order by n.tree_id, n.node_id
"""


def best_leaf_sft(con: duckdb.DuckDBPyConnection, params: PairParams, reward: RewardParams,
                  terminal_only: bool = False) -> list[SFTExample]:
    """Official SFT selection: good leaves, shuffled (seeded), at most `max_sft_per_prompt` per prompt."""
    limits = _limits(params, reward)
    args = {"gs": limits["gs"], "gh": limits["gh"], "max_tokens": params.max_tokens,
            "min_visits": params.min_visits, "terminal_only": terminal_only}
    by_tree: dict[str, list[dict]] = defaultdict(list)
    for row in query_rows(con, _LEAVES, args):
        by_tree[row["tree_id"]].append(row)
    rng = random.Random(params.seed)
    examples = []
    for rows in by_tree.values():
        rng.shuffle(rows)
        for index, row in enumerate(rows[: params.max_sft_per_prompt]):
            examples.append(SFTExample(id=f"{row['tree_id']}:{index}", prompt_id=row["prompt_id"],
                                       prompt=row["prompt"], response="".join(row["steps"]), kind=row["kind"],
                                       source="mcts"))
    return examples


EXTRACTORS = {"step": step_pairs, "terminal": terminal_pairs}


def extract_pairs(con: duckdb.DuckDBPyConnection, params: PairParams, reward: RewardParams) -> list[StepPair]:
    """Preference pairs by the mode named in params."""
    return EXTRACTORS[params.mode](con, params, reward)


def pair_counts(pairs: list[StepPair]) -> dict:
    """Counts by kind, depth and terminal-ness of the chosen step, for metrics; and the share of pairs whose
    two values each rest on at least two visits (a value from one rollout is one noisy draw)."""
    counts: dict = {"pairs": len(pairs), "by_kind": {}, "by_depth": {}, "chosen_terminal": 0, "rejected_terminal": 0}
    for pair in pairs:
        counts["by_kind"][pair.kind] = counts["by_kind"].get(pair.kind, 0) + 1
        counts["by_depth"][str(pair.depth)] = counts["by_depth"].get(str(pair.depth), 0) + 1
        counts["chosen_terminal"] += pair.chosen_terminal
        counts["rejected_terminal"] += pair.rejected_terminal
    counts["prompts"] = len({p.prompt_id for p in pairs})
    counts["share_min_visits_2"] = visits_share([min(p.chosen_visits, p.rejected_visits) for p in pairs])
    return counts


def visits_share(visits: list[int], at_least: int = 2) -> float:
    """Share of `visits` that are >= `at_least` (0 for an empty list)."""
    return round(sum(v >= at_least for v in visits) / len(visits), 4) if visits else 0.0


def step_pairs_reference(nodes: list[TreeNode], prompts: list[SeedPrompt], params: PairParams,
                         reward: RewardParams, count_tokens: Callable[[str, str], int] | None = None) -> list[dict]:
    """The official per-node Python walk (breadth-first, sibling lists), kept as the reference that the
    SQL version is tested and benchmarked against. Returns StepPair fields as dicts.

    With `count_tokens(prompt, response)` it measures each node's length by tokenizing, as the official
    code does, instead of reading the stored count.
    """
    limits = thresholds(params, reward)
    text = {p.id: p.text for p in prompts}
    trees: dict[str, dict[int, TreeNode]] = defaultdict(dict)
    children: dict[tuple[str, int], list[int]] = defaultdict(list)
    for node in nodes:
        trees[node.tree_id][node.node_id] = node
        if node.parent_id is not None:
            children[(node.tree_id, node.parent_id)].append(node.node_id)
    pairs = []
    for tree_id in sorted(trees):
        tree = trees[tree_id]
        queue = [(0, [])]
        while queue:
            parent_id, prefix = queue.pop(0)
            candidates = []
            for child_id in sorted(children[(tree_id, parent_id)]):
                child = tree[child_id]
                length = child.n_tokens if count_tokens is None else count_tokens(
                    text[child.prompt_id], "".join(prefix) + child.step)
                if length > params.max_tokens:
                    continue  # over length: neither a candidate nor expanded further
                queue.append((child_id, prefix + [child.step]))
                if child.terminal or child.visits >= params.min_visits:
                    candidates.append(child)
            for a in candidates:
                margin, good = limits[a.kind]
                for b in candidates:
                    if a.value - b.value > margin and a.value >= good:
                        pairs.append(dict(
                            prompt_id=a.prompt_id, prompt=text[a.prompt_id], prefix=prefix, chosen=a.step,
                            rejected=b.step, chosen_value=a.value, rejected_value=b.value,
                            chosen_visits=a.visits, rejected_visits=b.visits, chosen_terminal=a.terminal,
                            rejected_terminal=b.terminal, depth=a.depth, iteration=a.iteration, kind=a.kind,
                        ))
    return pairs
