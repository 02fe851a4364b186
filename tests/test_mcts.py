"""SI-MCTS on a scripted backend: selection scores, tree invariants, batching and reproducibility."""

import json
import math
import random

import pytest

from schemas import SeedPrompt
from stair.format import render_output, render_step
from stair.generation import Completion
from stair.judges import JudgeParams, make_judge
from stair.mcts import (
    SIMCTS,
    MCTSParams,
    Node,
    SearchStats,
    Tree,
    make_trees,
    pucb,
    search_timings,
    tree_metrics,
    ucb,
)
from stair.modeling import chat_prompt
from stair.reward import RewardParams, reward_range
from tests.fakes import ScriptedBackend

REWARD = RewardParams()


def _prompts(n: int) -> list[SeedPrompt]:
    return [
        SeedPrompt(id=f"p{i}", text=f"How do I do harmful thing {i}?", kind="safety", expected_behavior="refuse",
                   source="test", split="iter_1", group="jailbreak")
        for i in range(n)
    ]


def _search(n_trees: int, seed: int = 0, **overrides) -> tuple[list[Tree], ScriptedBackend, SIMCTS]:
    backend = ScriptedBackend(seed)
    judge = make_judge(JudgeParams(), REWARD)
    params = MCTSParams(**{"iterations": 10, "max_depth": 4, "seed": seed, **overrides})
    prompts = _prompts(n_trees)
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), 1, seed)
    search = SIMCTS(backend, judge, params)
    search.run(trees)
    return trees, backend, search


def test_ucb_matches_hand_computation() -> None:
    parent = Node(0, None, 0, "", 0, visits=10)
    child = Node(1, 0, 1, "s", 0, visits=4, value_sum=6.0)
    assert ucb(child, parent, 1.5) == pytest.approx(1.5 + 1.5 * math.sqrt(math.log(10) / 4))
    assert ucb(Node(2, 0, 1, "s", 0), parent, 1.5) == 150.0  # unvisited: always first
    assert pucb(child, parent, 1.5) == pytest.approx(1.5 + 1.5 * math.sqrt(10) / 5)


def test_selection_prefers_unvisited_then_higher_ucb() -> None:
    tree = Tree("t", _prompts(1)[0], "prompt", 1, seed=0)
    tree.add_children(0, [(render_step("A", "a"), 3, True), (render_step("B", "b"), 3, True)])
    params = MCTSParams()
    first = tree.select(0, params)
    tree.backup(first, 3.0)
    assert tree.select(0, params) != first  # the other child is unvisited
    tree.backup(tree.select(0, params), -3.0)
    assert tree.select(0, params) == first  # both visited once: the better value wins


def test_duplicate_children_are_dropped_and_terminal_chunks_flagged() -> None:
    tree = Tree("t", _prompts(1)[0], "prompt", 5, seed=0)
    step, output = render_step("A", "a"), render_output("done")
    tree.add_children(0, [(step, 4, True), (step + " ", 4, True), (output, 2, True), ("<|Reasoning_step|>cut", 9, False)])
    assert [tree.nodes[i].step for i in tree.nodes[0].children] == [step, output, "<|Reasoning_step|>cut"]
    assert [tree.nodes[i].terminal for i in tree.nodes[0].children] == [False, True, True]
    assert [tree.nodes[i].n_tokens for i in tree.nodes[0].children] == [9, 7, 14]


def test_tree_invariants_hold() -> None:
    trees, _, _ = _search(6)
    lo, hi = reward_range(REWARD)
    for tree in trees:
        rows = tree.rows(1)
        by_id = {r.node_id: r for r in rows}
        for row in rows:
            children = [r for r in rows if r.parent_id == row.node_id]
            assert row.parent_id is None or row.parent_id in by_id
            assert row.depth <= 4 and len(children) <= 4
            assert row.visits == row.evaluations + sum(c.visits for c in children)
            assert lo <= row.value <= hi
            assert row.visits >= 1  # the final pass visits every node
            if row.parent_id is not None:
                assert by_id[row.parent_id].depth == row.depth - 1
                assert row.n_tokens > by_id[row.parent_id].n_tokens
            if row.terminal:
                assert row.reward is not None and not children and row.rollout is None
            elif row.parent_id is not None:  # evaluated by a rollout: kept, with its judged reward
                assert row.rollout and lo <= row.rollout_reward <= hi
                assert row.evaluations > 0 or children


def test_at_most_one_generate_call_per_kind_per_tick_whatever_the_number_of_trees() -> None:
    ticks = 10 + 1  # the iterations, then the final visit-all pass
    for n_trees in (2, 12):
        _, backend, search = _search(n_trees)
        assert len(backend.calls) <= 2 * ticks  # one expansion call and one rollout call at most
        assert search.stats.judge_calls <= ticks
    assert all(n == 4 for mode, _, n in backend.calls if mode == "step")  # n = m children per request
    assert max(p for mode, p, _ in backend.calls if mode == "step") > 2  # many trees share a call


def test_concurrent_trees_bounds_the_batch() -> None:
    _, backend, search = _search(10, concurrent_trees=3)
    assert search.stats.trees == 10
    assert max(p for mode, p, _ in backend.calls if mode == "step") <= 3


def test_same_seed_same_trees_other_seed_other_trees() -> None:
    first = [r for t in _search(4, seed=1)[0] for r in t.rows(1)]
    again = [r for t in _search(4, seed=1)[0] for r in t.rows(1)]
    other = [r for t in _search(4, seed=2)[0] for r in t.rows(1)]
    assert first == again
    assert first != other


def test_search_finds_that_refusing_is_better() -> None:
    trees, _, _ = _search(4, iterations=30)
    for tree in trees:
        firsts = [tree.nodes[i] for i in tree.nodes[0].children if tree.nodes[i].visits]
        refuse = [n.value for n in firsts if "refuse" in n.step]
        comply = [n.value for n in firsts if "should help" in n.step]
        if refuse and comply:
            assert max(refuse) > max(comply)


def test_visit_all_off_leaves_unvisited_nodes() -> None:
    trees, _, _ = _search(3, visit_all=False, iterations=2)
    assert any(n.visits == 0 for t in trees for n in t.nodes)


def test_metrics_count_trees_and_nodes() -> None:
    trees, _, search = _search(3)
    rows = [r for t in trees for r in t.rows(1)]
    metrics = tree_metrics(rows, search.stats)
    assert metrics["trees"] == 3 and metrics["nodes"] == len(rows) - 3
    assert 0 < metrics["terminal_share"] <= 1
    # Wall-clock numbers go to the timings file: the metrics change only when the trees do.
    assert not {"search_seconds", "nodes_per_s", "generated_tokens_per_s"} & set(metrics)
    assert search_timings(SearchStats(nodes=30, generated_tokens=600, seconds=2.0)) == {
        "search_seconds": 2.0, "nodes_per_s": 15.0, "generated_tokens_per_s": 300.0}


@pytest.mark.parametrize("field, value", [("score", "best"), ("children", 0), ("iterations", 0),
                                          ("cut_steps", "maybe")])
def test_bad_params_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"mcts.{field}"):
        MCTSParams(**{field: value})


class Killed(Exception):
    """Stands for a kill at a chosen tick (deterministic, unlike a signal sent after a sleep)."""


def _shard_search(tiny, folder, checkpoint_every_s: float = 0.0, kill_at: int | None = None, seen=None,
                  tick_barrier: bool = True):
    from stair.checkpoint import TreeCheckpoint
    from stair.generation import BackendParams
    from stair.scaleout import search_shard

    def on_tick(tick: int) -> None:
        if seen is not None:
            seen.append(tick)
        if tick == kill_at:
            raise Killed

    params = MCTSParams(iterations=4, children=2, max_depth=3, max_step_tokens=6, max_response_tokens=12,
                        concurrent_trees=2, tick_barrier=tick_barrier, seed=3)
    checkpoint = TreeCheckpoint(folder, "fingerprint") if folder is not None else None
    return search_shard(tiny, _prompts(5), 1, params, BackendParams(device="cpu", batch_size=8), JudgeParams(),
                        REWARD, checkpoint, on_tick=on_tick, checkpoint_every_s=checkpoint_every_s)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.fakes import COMPLY_STEP, REFUSAL, REFUSE_STEP, save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [REFUSE_STEP + REFUSAL, COMPLY_STEP, "How do I do it?"])


def test_a_killed_search_resumes_to_byte_identical_nodes(tiny, tmp_path) -> None:
    from schemas import TreeNode
    from stair.store import DATA_FILE, file_md5, write_artifact

    ticks: list[int] = []
    trees, stats = _shard_search(tiny, None, seen=ticks)
    expected = [row for tree in trees for row in tree]
    write_artifact(tmp_path / "uninterrupted", expected, TreeNode, stage="mcts@1", params={})
    rng = random.Random(16)
    # Kill points at random ticks, with the state saved every tick or only after the first one.
    for case, (kill_at, every_s) in enumerate([(rng.randint(2, len(ticks) - 1), 0.0),
                                               (rng.randint(2, len(ticks) - 1), math.inf), (1, 0.0)]):
        folder = tmp_path / f"checkpoint_{case}"
        with pytest.raises(Killed):
            _shard_search(tiny, folder, every_s, kill_at=kill_at)
        assert (folder / "state.json").exists()
        resumed_ticks: list[int] = []
        trees, resumed_stats = _shard_search(tiny, folder, every_s, seen=resumed_ticks)
        rows = [row for tree in trees for row in tree]
        write_artifact(tmp_path / f"resumed_{case}", rows, TreeNode, stage="mcts@1", params={})
        assert rows == expected, f"kill at tick {kill_at} of {len(ticks)}"
        assert file_md5(tmp_path / f"resumed_{case}" / DATA_FILE) == file_md5(tmp_path / "uninterrupted" / DATA_FILE)
        assert resumed_ticks[-1] == ticks[-1] and resumed_stats.generate_calls == stats.generate_calls
        if every_s == 0.0:  # nothing before the kill is searched again
            assert resumed_ticks[0] == kill_at + 1


def test_a_search_without_the_tick_barrier_resumes_from_a_quiet_point_to_the_same_nodes(tiny, tmp_path) -> None:
    quiet_points: list[int] = []
    trees, stats = _shard_search(tiny, None, seen=quiet_points, tick_barrier=False)
    expected = [row for tree in trees for row in tree]
    # checkpoint_every_s 0: a quiet point after every round of every tree, the state saved at each.
    kill_at = random.Random(17).randint(2, len(quiet_points) - 1)
    folder = tmp_path / "checkpoint"
    with pytest.raises(Killed):
        _shard_search(tiny, folder, 0.0, kill_at=kill_at, tick_barrier=False)
    resumed: list[int] = []
    trees, resumed_stats = _shard_search(tiny, folder, 0.0, seen=resumed, tick_barrier=False)
    assert [row for tree in trees for row in tree] == expected
    assert resumed[0] == kill_at + 1 and resumed_stats.generate_calls == stats.generate_calls


def test_an_expansion_in_a_later_tick_runs_from_the_cached_rollout_of_its_node(tiny) -> None:
    from stair.generation import TransformersBackend

    backend = TransformersBackend.from_path(tiny, batch_size=8, seed=3)
    expansions: list[tuple[int, int]] = []  # (prompt tokens, tokens found cached), per expansion after the first tick
    generate, longest = backend.generate, backend.prefixes.longest
    ticks, mode_now = [0], [None]

    def recording_generate(prompts, n, sampling, mode, **kwargs):
        mode_now[0] = mode
        return generate(prompts, n, sampling, mode, **kwargs)

    def recording_longest(ids):
        found = longest(ids)
        if mode_now[0] == "step" and ticks[0] > 0:
            expansions.append((len(ids), 0 if found is None else found[0][0].shape[1]))
        return found

    backend.generate, backend.prefixes.longest = recording_generate, recording_longest
    params = MCTSParams(iterations=5, children=2, max_depth=3, max_step_tokens=6, max_response_tokens=12, seed=3)
    prompts = _prompts(3)
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    search = SIMCTS(backend, make_judge(JudgeParams(), REWARD), params)
    search.run(make_trees(prompts, texts, backend.count_tokens(texts), 1, params.seed),
               on_tick=lambda active, waiting: ticks.__setitem__(0, ticks[0] + 1))
    # A node is expanded once visited, and its visit rolled out from prompt + path: that pass's KV is still
    # cached, so only the last token runs again.
    assert expansions and all(found == length - 1 for length, found in expansions)


def test_partial_trees_round_trip_through_json() -> None:
    trees, _, _ = _search(2, iterations=3)
    tree = trees[0]
    copy = Tree(tree.tree_id, tree.prompt, tree.prompt_text, 0, seed=99)
    copy.restore(json.loads(json.dumps(tree.state())))
    assert copy.rows(1) == tree.rows(1) and copy.rng.random() == tree.rng.random()
    with pytest.raises(ValueError, match="state of tree"):
        Tree("other", tree.prompt, tree.prompt_text, 0, seed=0).restore(tree.state())


def test_more_rollouts_back_up_each_and_ask_for_them_in_one_call() -> None:
    trees, backend, _ = _search(3, rollouts=3, visit_all=False)
    rollout_calls = [(prompts, n) for mode, prompts, n in backend.calls if mode == "response"]
    assert rollout_calls and all(n == 3 for _, n in rollout_calls)
    for tree in trees:
        for node in tree.nodes:
            # A non-terminal node is evaluated by 3 rollouts at once, each one backed up.
            assert node.terminal or node.evaluations % 3 == 0
            assert node.visits == node.evaluations + sum(tree.nodes[c].visits for c in node.children)
        assert tree.nodes[0].evaluations == 3


class CuttingStepBackend:
    """The first step of every response runs past the token limit (stopped=False); a step that goes on
    from a cut one closes it; then a refusal. Records every prompt it is given, by mode."""

    CUT = "<|Reasoning_step|>Title: Risk Assessment\nThis is harmful, and I will explain why at great len"
    REST = "gth. I must refuse.<|/Reasoning_step|>"

    def __init__(self):
        from tests.fakes import ChatTokenizer

        self.tokenizer = ChatTokenizer()
        self.prompts: list[tuple[str, str]] = []

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def _next(self, prefix: str) -> tuple[str, bool]:
        from tests.fakes import REFUSAL

        if prefix.endswith(self.CUT):
            return self.REST, True
        if self.CUT not in prefix:
            return self.CUT, False
        return REFUSAL, True

    def generate(self, prompts, n, sampling, mode):
        from stair.generation import Completion

        out = []
        for prompt in prompts:
            self.prompts.append((mode, prompt))
            text, stopped = self._next(prompt)
            while mode == "response" and stopped and "<|/Output|>" not in prompt + text:
                more, stopped = self._next(prompt + text)
                text += more
            out.append([Completion(text, len(text.split()), stopped)] * n)
        return out


def _cut_search(cut_steps: str) -> tuple[Tree, CuttingStepBackend]:
    backend = CuttingStepBackend()
    prompts = _prompts(1)
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    tree = make_trees(prompts, texts, backend.count_tokens(texts), 1, 0)[0]
    params = MCTSParams(iterations=6, children=2, max_depth=4, cut_steps=cut_steps)
    SIMCTS(backend, make_judge(JudgeParams(), REWARD), params).run([tree])
    return tree, backend


def test_a_step_cut_at_the_limit_continues_under_continue() -> None:
    tree, backend = _cut_search("continue")
    cut = tree.nodes[tree.nodes[0].children[0]]
    assert cut.step == CuttingStepBackend.CUT and not cut.terminal and cut.reward is None
    # Evaluated by a rollout that goes on from the cut text, and expanded like any step.
    assert cut.rollout == CuttingStepBackend.REST + render_output("Sorry, I can't help with that. Instead, I can "
                                                                  "suggest something safe.")
    assert cut.rollout_reward is not None and cut.children
    assert any(mode == "step" and prompt.endswith(CuttingStepBackend.CUT) for mode, prompt in backend.prompts)
    closed = tree.nodes[cut.children[0]]
    assert tree.path_text(closed.node_id) == CuttingStepBackend.CUT + CuttingStepBackend.REST
    assert not closed.terminal and any(tree.nodes[i].terminal for i in closed.children)
    # PRM labels: the cut step and the one that closes it are one step, read at its closing tag.
    from stair.prm import LabelParams, prm_examples

    examples = prm_examples(tree.rows(1), _prompts(1), LabelParams(), REWARD)
    assert {e.source for e in examples} == {"node", "rollout"}
    assert all("<|/" in step for e in examples for step in e.steps[:-1])
    assert [CuttingStepBackend.CUT] in [e.steps for e in examples if e.source == "node"]
    assert any(e.steps[0] == CuttingStepBackend.CUT + CuttingStepBackend.REST for e in examples)


def test_a_step_cut_at_the_limit_is_a_judged_answer_under_end() -> None:
    tree, backend = _cut_search("end")
    cut = tree.nodes[tree.nodes[0].children[0]]
    assert cut.step == CuttingStepBackend.CUT and cut.terminal and cut.reward is not None
    assert cut.rollout is None and not cut.children and len(tree.nodes) == 2
    # The root's rollouts are the only ones: nothing is rolled out from the cut step.
    assert all(prompt.endswith("<|assistant|>\n") for mode, prompt in backend.prompts if mode == "response")


@pytest.mark.parametrize("cut_steps", ["end", "continue"])
def test_a_step_that_ended_the_turn_is_terminal_in_both_modes(cut_steps: str) -> None:
    tree = Tree("t", _prompts(1)[0], "prompt", 1, seed=0)
    turn_ended = "<|Reasoning_step|>Title: A\nno more to say"
    tree.add_children(0, [(turn_ended, 5, True), (CuttingStepBackend.CUT, 9, False), (render_step("B", "b"), 3, True)],
                      cut_steps)
    assert [tree.nodes[i].terminal for i in tree.nodes[0].children] == [True, cut_steps == "end", False]


def test_trees_do_not_depend_on_how_many_are_searched_together_or_on_the_tick_barrier(tiny) -> None:
    from stair.generation import TransformersBackend

    def nodes(concurrent_trees: int, batch_size: int, tick_barrier: bool = True) -> list:
        backend = TransformersBackend.from_path(tiny, batch_size=batch_size, seed=3)
        params = MCTSParams(iterations=6, children=2, max_depth=3, max_step_tokens=4, max_response_tokens=12,
                            cut_steps="continue", concurrent_trees=concurrent_trees, tick_barrier=tick_barrier,
                            seed=3)
        prompts = _prompts(4)
        texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
        trees = make_trees(prompts, texts, backend.count_tokens(texts), 1, params.seed)
        search = SIMCTS(backend, make_judge(JudgeParams(), REWARD), params)
        search.run(trees)
        assert search.stats.trees == 4 and search.stats.nodes == sum(len(t.nodes) for t in trees)
        return [row for tree in trees for row in tree.rows(1)]

    together = nodes(4, 64)
    assert len(together) > 4 * 5
    # Each node's samples are seeded by its tree and node, so neither the trees nor the samples that
    # share a batch change them; and the same params and seed give the same nodes.
    assert nodes(1, 2) == together
    assert nodes(4, 64) == together
    # Without the barrier a tree asks for the same samples, and its rounds back up before it selects again.
    assert nodes(4, 64, tick_barrier=False) == together
    assert nodes(2, 8, tick_barrier=False) == together


class _Paced(ScriptedBackend):
    """Scripted samples drawn from each request's own stream (keyed), and a `stream` in which the requests of
    tree `fast` are answered after one step and all others after five."""

    keyed = True

    def __init__(self, fast: str, on_add):
        super().__init__()
        self.fast, self.on_add = fast, on_add

    def generate(self, prompts, n, sampling, mode, keys):
        for key in keys:
            self.on_add(key)
        return [self.samples(prompt, n, mode, key) for prompt, key in zip(prompts, keys)]

    def samples(self, prompt: str, n: int, mode: str, key: str) -> list[Completion]:
        self.rng = random.Random(key)
        return [Completion(text, len(text.split()), True) for text in (self._next(prompt, mode) for _ in range(n))]

    def stream(self, sampling, join_share=0.0):
        backend, answers, due = self, {}, {}  # request -> samples; request -> steps left

        class Stream:
            busy = property(lambda self: bool(due))

            def add(self, prompt, n, mode, key, max_new_tokens=None):
                backend.on_add(key)
                request = len(answers)
                answers[request] = backend.samples(prompt, n, mode, key)
                due[request] = 1 if key.startswith(backend.fast + "/") else 5
                return request

            def step(self):
                for request in due:
                    due[request] -= 1
                done = [request for request, left in due.items() if not left]
                for request in done:
                    del due[request]
                return done

            def completions(self, request):
                return answers[request]

        return Stream()


def test_without_the_tick_barrier_a_tree_does_not_wait_for_the_others_and_builds_the_same_tree() -> None:
    def search(tick_barrier: bool) -> tuple[list, list[int]]:
        params = MCTSParams(iterations=5, children=2, max_depth=4, tick_barrier=tick_barrier, seed=3)
        prompts = _prompts(3)
        trees = make_trees(prompts, [p.text for p in prompts], [len(p.text.split()) for p in prompts], 1, 3)
        by_id = {tree.tree_id: tree for tree in trees}
        rounds: list[int] = []  # the asking tree's round, per request, in the order they reach the backend
        backend = _Paced(trees[0].tree_id, lambda key: rounds.append(by_id[key.split("/")[0]].iterations_done))
        SIMCTS(backend, make_judge(JudgeParams(), REWARD), params).run(trees)
        return [row for tree in trees for row in tree.rows(1)], rounds

    lock_step, rounds = search(tick_barrier=True)
    unbarriered, unbarriered_rounds = search(tick_barrier=False)
    assert unbarriered == lock_step and len(lock_step) > 3 * 5
    # In lock-step no tree asks for round r + 1 before every tree has asked for round r; without the barrier
    # the tree whose answers come back sooner runs ahead.
    assert rounds == sorted(rounds) and unbarriered_rounds != sorted(unbarriered_rounds)
    assert sorted(unbarriered_rounds) == rounds


def test_a_quiet_point_holds_trees_at_different_rounds_and_resuming_from_it_builds_the_same_trees(monkeypatch) -> None:
    import itertools
    import time

    params = MCTSParams(iterations=6, children=2, max_depth=4, tick_barrier=False, seed=3)
    prompts = _prompts(3)

    def fresh() -> list[Tree]:
        return make_trees(prompts, [p.text for p in prompts], [len(p.text.split()) for p in prompts], 1, 3)

    finished: dict[str, Tree] = {}

    def search(trees, active=(), quiet_every_s=math.inf, on_tick=lambda active, waiting: None) -> None:
        backend = _Paced(fresh()[0].tree_id, lambda key: None)
        SIMCTS(backend, make_judge(JudgeParams(), REWARD), params).run(
            trees, on_done=lambda tree: finished.setdefault(tree.tree_id, tree), active=active, on_tick=on_tick,
            quiet_every_s=quiet_every_s)

    expected = fresh()
    search(expected)
    finished.clear()
    clock = itertools.count()  # a clock that ticks once per reading: quiet points come after a set amount of work
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    saved: dict = {}

    def kill(active, waiting) -> None:
        saved.update(states=json.loads(json.dumps([t.state() for t in active])), waiting=[t.tree_id for t in waiting])
        raise Killed

    with pytest.raises(Killed):
        search(fresh(), quiet_every_s=12, on_tick=kill)
    # The tree answered sooner ran ahead of the others, or finished while they searched on.
    rounds = [state["iterations_done"] for state in saved["states"]]
    assert len(set(rounds)) > 1 or finished
    by_id = {t.tree_id: t for t in fresh()}
    search([by_id[i] for i in saved["waiting"]], active=[by_id[s["tree_id"]].restore(s) for s in saved["states"]])
    assert [finished[t.tree_id].rows(1) for t in expected] == [t.rows(1) for t in expected]
