"""Pair extraction (SQL over nodes) against hand-built trees and the official per-node walk."""

import random

import pytest

from schemas import SeedPrompt, StepPair, TreeNode
from stair.pairs import (
    PairParams,
    best_leaf_sft,
    decision_counts,
    extract_pairs,
    nodes_connection,
    pair_counts,
    step_pair_table,
    step_pairs_reference,
    thresholds,
    visits_share,
)
from stair.reward import RewardParams

REWARD = RewardParams()
PROMPTS = [
    SeedPrompt(id="p", text="request", kind="safety", source="t", split="iter_1"),
    SeedPrompt(id="q", text="question", kind="helpfulness", source="t", split="iter_1"),
]


def node(node_id, parent, value, visits=4, terminal=False, tokens=10, depth=None, tree="t", prompt="p",
         kind="safety", reward=None):
    depth = depth if depth is not None else (0 if parent is None else 1)
    return TreeNode(tree_id=tree, prompt_id=prompt, iteration=1, kind=kind, node_id=node_id, parent_id=parent,
                    depth=depth, step="" if parent is None else f"s{node_id}", n_tokens=tokens, visits=visits,
                    evaluations=1, value_sum=value * visits, value=value, terminal=terminal,
                    reward=reward if reward is not None else (value if terminal else None))


def pairs_of(nodes, **overrides) -> set[tuple[str, str]]:
    con = nodes_connection(nodes, PROMPTS)
    return {(p.chosen, p.rejected) for p in extract_pairs(con, PairParams(**overrides), REWARD)}


def root() -> TreeNode:
    return node(0, None, 1.0, visits=20)


def test_margin_is_strict_and_good_threshold_inclusive() -> None:
    nodes = [root(), node(1, 0, 0.8), node(2, 0, 0.3), node(3, 0, 0.29), node(4, 0, 0.79)]
    # 0.8 - 0.3 = 0.5 is not > 0.5; 0.8 - 0.29 > 0.5 and 0.8 >= 0.8; 0.79 is below the bar.
    assert pairs_of(nodes) == {("s1", "s3")}


def test_min_visits_and_terminal_exemption() -> None:
    nodes = [root(), node(1, 0, 2.0, visits=1), node(2, 0, -1.0, visits=1, terminal=True), node(3, 0, -2.0, visits=3)]
    assert pairs_of(nodes, min_visits=3) == set()  # s1 lacks visits; s2 (terminal) vs s3: s2 is not good
    assert pairs_of(nodes, min_visits=1) == {("s1", "s2"), ("s1", "s3")}
    nodes[2] = node(2, 0, 1.5, visits=1, terminal=True)
    assert pairs_of(nodes, min_visits=3) == {("s2", "s3")}


def test_only_siblings_pair() -> None:
    nodes = [root(), node(1, 0, 3.0), node(2, 0, 2.8), node(3, 1, -3.0, depth=2), node(4, 2, 3.0, depth=2)]
    assert pairs_of(nodes) == set()  # s3/s4 differ a lot but have different parents


def test_max_tokens_prunes_the_node_and_its_subtree() -> None:
    nodes = [root(), node(1, 0, 3.0, tokens=50), node(2, 0, -3.0, tokens=10),
             node(3, 1, 3.0, depth=2, tokens=60), node(4, 1, -3.0, depth=2, tokens=70)]
    assert pairs_of(nodes, max_tokens=40) == set()
    assert pairs_of(nodes, max_tokens=65) == {("s1", "s2")}
    assert pairs_of(nodes, max_tokens=100) == {("s1", "s2"), ("s3", "s4")}


def test_prefix_is_the_shared_steps() -> None:
    nodes = [root(), node(1, 0, 1.0), node(2, 1, 3.0, depth=2), node(3, 1, -3.0, depth=2)]
    con = nodes_connection(nodes, PROMPTS)
    (pair,) = extract_pairs(con, PairParams(), REWARD)
    assert (pair.prefix, pair.chosen, pair.rejected, pair.depth, pair.prompt) == (["s1"], "s2", "s3", 2, "request")


def test_relative_thresholds_scale_with_each_kind() -> None:
    limits = thresholds(PairParams(thresholds="relative"), REWARD)
    assert limits["safety"] == pytest.approx((0.6, 0.6))  # range [-3, 3]: 0.1 * 6, -3 + 0.6 * 6
    assert limits["helpfulness"] == pytest.approx((0.2, 2.2))  # range [1, 3]
    nodes = [node(0, None, 2.0, prompt="q", kind="helpfulness"), node(1, 0, 2.1, prompt="q", kind="helpfulness"),
             node(2, 0, 1.5, prompt="q", kind="helpfulness")]
    assert pairs_of(nodes) == {("s1", "s2")}  # absolute: 0.6 > 0.5, 2.1 >= 0.8
    assert pairs_of(nodes, thresholds="relative") == set()  # 2.1 < 2.2


def test_terminal_pairs_replicate_the_shorter_side() -> None:
    nodes = [root(), node(1, 0, 3.0, terminal=True), node(2, 0, -3.0, terminal=True),
             node(3, 0, -2.0, terminal=True), node(4, 0, -1.0, terminal=True), node(5, 0, 0.5, terminal=True)]
    con = nodes_connection(nodes, PROMPTS)
    pairs = extract_pairs(con, PairParams(mode="terminal", max_good_bad_ratio=4), REWARD)
    # one good, three bad (0.5 is neither >= 0.8 nor <= 0.3): good replicated min(3 // 1 + 1, 4) = 4 times
    assert len(pairs) == 3 and {p.chosen for p in pairs} == {"s1"}
    assert {p.rejected for p in pairs} == {"s2", "s3", "s4"}
    capped = extract_pairs(con, PairParams(mode="terminal", max_good_bad_ratio=2), REWARD)
    assert len(capped) == 2


def test_best_leaf_sft_keeps_good_leaves_up_to_the_cap() -> None:
    nodes = [root(), node(1, 0, 3.0), node(2, 0, 2.0, terminal=True), node(3, 0, -1.0, terminal=True),
             node(4, 1, 3.0, depth=2, terminal=True)]
    con = nodes_connection(nodes, PROMPTS)
    picked = best_leaf_sft(con, PairParams(), REWARD)
    assert sorted(e.response for e in picked) == ["s1s4", "s2"]  # s1 has a child, s3 is bad
    assert len(best_leaf_sft(con, PairParams(max_sft_per_prompt=1), REWARD)) == 1


def random_forest(n_trees: int, seed: int) -> list[TreeNode]:
    rng = random.Random(seed)
    nodes = []
    for t in range(n_trees):
        kind, prompt = rng.choice([("safety", "p"), ("helpfulness", "q")])
        tree = [node(0, None, 0.0, tree=f"t{t}", prompt=prompt, kind=kind, tokens=5)]
        for _ in range(1, rng.randint(2, 40)):
            parent = tree[rng.randrange(len(tree))]
            if parent.terminal:
                continue
            tree.append(node(len(tree), parent.node_id, round(rng.uniform(-3, 3), 2), visits=rng.randint(0, 6),
                             terminal=rng.random() < 0.3, tokens=parent.n_tokens + rng.randint(1, 30),
                             depth=parent.depth + 1, tree=f"t{t}", prompt=prompt, kind=kind))
        nodes.extend(tree)
    return nodes


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("params", [PairParams(), PairParams(min_visits=3, max_tokens=60),
                                    PairParams(thresholds="relative")])
def test_sql_matches_the_official_walk_on_random_trees(seed: int, params: PairParams) -> None:
    nodes = random_forest(30, seed)
    con = nodes_connection(nodes, PROMPTS)
    sql = extract_pairs(con, params, REWARD)
    reference = [StepPair(**r) for r in step_pairs_reference(nodes, PROMPTS, params, REWARD)]
    key = lambda p: (p.prompt_id, tuple(p.prefix), p.chosen, p.rejected)  # noqa: E731
    assert sorted(map(key, sql)) == sorted(map(key, reference))
    assert sorted(sql, key=key) == sorted(reference, key=key)


def test_counts() -> None:
    pair = StepPair(prompt_id="p", prompt="r", prefix=[], chosen="a", rejected="b", chosen_value=3,
                    rejected_value=-3, chosen_visits=1, rejected_visits=1, chosen_terminal=True,
                    rejected_terminal=False, depth=1, iteration=1, kind="safety")
    counts = pair_counts([pair, pair.model_copy(update={"depth": 2, "prompt_id": "q", "rejected_visits": 2,
                                                        "chosen_visits": 5})])
    # The second pair's values rest on 5 and 2 visits, the first's on 1 and 1.
    assert counts == {"pairs": 2, "by_kind": {"safety": 2}, "by_depth": {"1": 1, "2": 1}, "chosen_terminal": 2,
                      "rejected_terminal": 0, "prompts": 2, "share_min_visits_2": 0.5}
    assert visits_share([]) == 0.0 and visits_share([1, 2, 3, 1]) == 0.5


def test_bad_mode_is_named() -> None:
    with pytest.raises(ValueError, match="pairs.mode"):
        PairParams(mode="pairs")


REFUSAL = "<|Output|>Final Answer:\nSorry, I can't help with that.<|/Output|>"
ANSWER = "<|Output|>Final Answer:\nHere is how.<|/Output|>"


def outcome(n: TreeNode, text: str) -> TreeNode:
    """`n` ending in `text`: its own step if terminal, else its kept rollout."""
    return n.model_copy(update={"step": text} if n.terminal else {"rollout": text})


def test_decision_pairs_are_counted_each_way_from_each_sides_answer_or_rollout() -> None:
    helpful = dict(tree="u", prompt="q", kind="helpfulness")
    nodes = [root(),
             # tree t (safety): a refusal (terminal) over three compliant rollouts
             outcome(node(1, 0, 3.0, terminal=True), REFUSAL), outcome(node(2, 0, -1.0), ANSWER),
             outcome(node(3, 0, 0.5), ANSWER), outcome(node(4, 0, 2.0), ANSWER),
             # tree u (helpfulness): two compliant rollouts over a refusing one (too low to be chosen itself)
             node(0, None, 1.0, **helpful), outcome(node(1, 0, 3.0, **helpful), ANSWER),
             outcome(node(2, 0, 0.6, **helpful), REFUSAL), outcome(node(3, 0, 2.0, **helpful), ANSWER),
             outcome(node(4, 0, 0.0, **helpful), ANSWER)]
    con = nodes_connection(nodes, PROMPTS)
    rows = step_pair_table(con, PairParams(), REWARD).to_pylist()
    # t: the refusal over s2, s3, s4; s4 over s2 and s3 (both comply). u: s1 and s3 over s2 (comply over
    # refuse); s1 over s3 and s4, s3 over s4 (all comply).
    assert len(rows) == len(extract_pairs(con, PairParams(), REWARD)) == 10
    assert decision_counts(rows) == {"refuse_over_comply": 3, "comply_over_refuse": 2}


class SeparatedBackend:
    """A scripted policy that writes a blank line before every chunk but the first, as models trained on
    the official STAIR-SFT layout do ("<|/Reasoning_step|>\\n\\n<|Reasoning_step|>"); `chunks` collects
    every chunk it emits."""

    SEPARATOR = "\n\n"

    def __init__(self, seed: int = 0):
        from tests.fakes import ScriptedBackend

        self.inner = ScriptedBackend(seed)
        self.tokenizer = self.inner.tokenizer
        self.chunks: set[str] = set()

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def _chunk(self, prefix: str) -> str:
        chunk = self.inner._next(prefix, "step")
        chunk = chunk if prefix.endswith("<|assistant|>\n") else self.SEPARATOR + chunk
        self.chunks.add(chunk)
        return chunk

    def generate(self, prompts, n, sampling, mode):
        from stair.generation import Completion

        out = []
        for prompt in prompts:
            samples = []
            for _ in range(n):
                text = self._chunk(prompt)
                while mode == "response" and "<|/Output|>" not in text:
                    text += self._chunk(prompt + text)
                samples.append(Completion(text, len(text.split()), True))
            out.append(samples)
        return out


def test_trees_pairs_and_prm_labels_keep_the_models_separator_byte_for_byte() -> None:
    from stair.format import parse_response, split_chunks
    from stair.judges import JudgeParams, make_judge
    from stair.mcts import SIMCTS, MCTSParams, make_trees
    from stair.modeling import chat_prompt
    from stair.prm import LabelParams, prm_examples

    backend = SeparatedBackend(3)
    prompts = [SeedPrompt(id=f"p{i}", text=f"How do I do harmful thing {i}?", kind="safety",
                          expected_behavior="refuse", source="t", split="iter_1") for i in range(4)]
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), 1, 0)
    SIMCTS(backend, make_judge(JudgeParams(), REWARD), MCTSParams(iterations=20, max_depth=4)).run(trees)

    paths = set()
    for tree in trees:
        for n in tree.nodes[1:]:
            assert n.step in backend.chunks and n.step.startswith(SeparatedBackend.SEPARATOR) == (n.depth > 1)
            path = tree.path_text(n.node_id)
            assert path == "".join(split_chunks(path))  # the official trajectory_to_response: a plain join
            paths.add((tree.prompt.text, path))
            if n.terminal:
                assert parse_response(path).format_ok
            if n.rollout is not None:
                assert parse_response(path + n.rollout).format_ok
    assert any(SeparatedBackend.SEPARATOR + "<|Reasoning_step|>" in p for _, p in paths)

    rows = [r for tree in trees for r in tree.rows(1)]
    con = nodes_connection(rows, prompts)
    pairs = extract_pairs(con, PairParams(), REWARD)
    assert pairs
    for pair in pairs:
        assert (pair.prompt, "".join(pair.prefix) + pair.chosen) in paths
        assert (pair.prompt, "".join(pair.prefix) + pair.rejected) in paths
    assert all((e.prompt, e.response) in paths for e in best_leaf_sft(con, PairParams(), REWARD))

    rollouts = {(t.prompt.text, t.path_text(n.node_id) + n.rollout) for t in trees for n in t.nodes if n.rollout}
    examples = prm_examples(rows, prompts, LabelParams(), REWARD)
    assert {e.source for e in examples} == {"node", "rollout"}
    for e in examples:
        assert (e.prompt, "".join(e.steps)) in (paths if e.source == "node" else rollouts)
        assert all(s.startswith(SeparatedBackend.SEPARATOR) for s in e.steps[1:])
