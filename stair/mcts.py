"""Safety-Informed MCTS (SI-MCTS), batched in lock-step across many trees.

Semantics follow the official STAIR code: nodes are reasoning steps; selection descends by UCB
(an unvisited child scores 100 * c, so it is always tried first; ties broken by the tree's own random
stream); a leaf is expanded (m sampled next steps, duplicates dropped) only once it has been visited;
an unvisited node is evaluated directly: a terminal node (its step closes the output, or ends at the end
of turn; under `cut_steps="end"` also a step cut at the token limit) by judging the response, any other
(under "continue", as in the official code, a cut step too: it is expanded further like any step) by one
rollout to a final answer (`rollouts` > 1: that many, each backed up, so a value rests on more than one
draw); the reward is added to the node and every ancestor (value = mean). After the iterations, every
node never visited is evaluated once. A node's first rollout is kept on it with its reward: a whole
answer with an exact label, for the PRM.

Batching: each tick, every active tree selects its leaf; all expansions of the tick go to the backend
in one call (n = m per node), then all rollouts in one call, then all final answers to the judge in
one call, then backup. A finished tree is handed to `on_done` (for checkpointing) and replaced by the
next waiting prompt, so at most `concurrent_trees` trees are in memory. After every tick `on_tick` sees
the active and waiting trees: `Tree.state` and `Tree.restore` carry a partial tree (its nodes and random
stream) across a kill, so a search resumed from the same trees in the same order repeats the same ticks.
Without the barrier (`tick_barrier: false`, `_Unbarriered`) a tree sends its next request as soon as its last
is back, builds the same tree, and the state is taken at quiet points instead of ticks.
A backend's prompt cache (`forget_prefixes`) lives for the whole run, so the expansion of a node runs from
the KV its rollout left, ticks before. A resumed search starts with an empty cache and computes those
prompts afresh, and the recomputed KV can round differently in the last bits; where that flips a sampled
token, the resumed trees differ from the uninterrupted ones from there on (it happens: the cache's lifetime
going from one tick to the whole run changed a few of the default's iteration-2 nodes).
"""

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas import SeedPrompt, TreeNode
from stair.format import CUT_STEPS, ends_response
from stair.generation import Backend, Sampling
from stair.judges import Judge, Scored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MCTSParams:
    """Search settings (the `mcts` section of params.yaml); defaults are params.yaml's (the CPU run), with the
    official values in comments where they differ."""

    iterations: int = 12  # official: 200
    children: int = 4  # m: next steps sampled per expansion
    c: float = 1.5
    score: str = "ucb"  # ucb | pucb
    max_depth: int = 6  # official: 7
    temperature: float = 1.2
    top_p: float = 0.9
    top_k: int = 50
    max_step_tokens: int = 96  # per expansion (official: 2048)
    max_response_tokens: int = 320  # per rollout (official: 2048)
    concurrent_trees: int = 64
    visit_all: bool = True  # the final "visit every unvisited node once" pass
    rollouts: int = 1  # rollouts per evaluation of a non-terminal node (official: 1); each is backed up
    cut_steps: str = "end"  # a step cut at max_step_tokens: end (judged as it stands) | continue (official)
    # false: a tree's next request goes out as soon as its last is back (the transformers backend with rule
    # judges; elsewhere lock-step anyway). The same trees; not faster on 2 CPU cores (docs/performance.md).
    tick_barrier: bool = True
    workers: int = 1  # > 1: prompts sharded over this many Ray actors, one engine each (the ray extra)
    ray_address: str = ""  # workers > 1: "" a private local Ray instance; "auto" or an address: join that cluster
    gpus_per_worker: float = 0.0  # GPUs each Ray actor asks for (a vLLM engine spans them); 0: CPU actors
    seed: int = 0

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"mcts.score={self.score!r} is not one of {sorted(SCORES)}")
        if self.cut_steps not in CUT_STEPS:
            raise ValueError(f"mcts.cut_steps={self.cut_steps!r} is not one of {CUT_STEPS}")
        for name in ("iterations", "children", "max_depth", "concurrent_trees", "max_step_tokens", "workers",
                     "rollouts"):
            if getattr(self, name) < 1:
                raise ValueError(f"mcts.{name}={getattr(self, name)} must be >= 1")
        if self.gpus_per_worker > 1 and not float(self.gpus_per_worker).is_integer():
            raise ValueError(f"mcts.gpus_per_worker={self.gpus_per_worker}: above 1 it must be a whole number "
                             "(Ray shares a GPU only in fractions below 1)")


@dataclass
class Node:
    node_id: int
    parent: int | None
    depth: int
    step: str
    n_tokens: int
    terminal: bool = False
    children: list[int] = field(default_factory=list)
    visits: int = 0
    evaluations: int = 0
    value_sum: float = 0.0
    reward: float | None = None
    safety: float | None = None
    helpfulness: float | None = None
    rollout: str | None = None
    rollout_reward: float | None = None

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


def ucb(node: Node, parent: Node, c: float) -> float:
    if node.visits == 0:
        return 100 * c
    return node.value + c * math.sqrt(math.log(parent.visits) / node.visits)


def pucb(node: Node, parent: Node, c: float, prior: float = 1.0) -> float:
    if node.visits == 0:
        return 100 * c * prior
    return node.value + c * prior * math.sqrt(parent.visits) / (1 + node.visits)


SCORES: dict[str, Callable[[Node, Node, float], float]] = {"ucb": ucb, "pucb": pucb}


class Tree:
    """One search tree over one prompt, with its own random stream."""

    def __init__(self, tree_id: str, prompt: SeedPrompt, prompt_text: str, prompt_tokens: int, seed: int):
        self.tree_id, self.prompt, self.prompt_text = tree_id, prompt, prompt_text
        self.nodes = [Node(0, None, 0, "", prompt_tokens)]
        self.rng = random.Random(f"{seed}:{tree_id}")  # string seeds are hashed stably (sha512)
        self.iterations_done = 0

    def state(self) -> dict:
        """Everything a partial tree holds (JSON-ready): restoring it continues the search exactly."""
        return {"tree_id": self.tree_id, "iterations_done": self.iterations_done, "rng": self.rng.getstate(),
                "nodes": [dataclasses.asdict(node) for node in self.nodes]}

    def restore(self, state: dict) -> "Tree":
        """Continue from `state` (from `state()` of this tree, possibly through JSON)."""
        if state["tree_id"] != self.tree_id:
            raise ValueError(f"state of tree {state['tree_id']!r} given to tree {self.tree_id!r}")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.nodes = [Node(**node) for node in state["nodes"]]
        self.iterations_done = state["iterations_done"]
        return self

    def path_text(self, node_id: int) -> str:
        steps = []
        while node_id is not None:
            node = self.nodes[node_id]
            steps.append(node.step)
            node_id = node.parent
        return "".join(reversed(steps))

    def request(self, node_id: int, kind: str) -> tuple[str, str]:
        """The prompt (prompt + path) and key of the node's `expand` or `rollout` request: the key seeds its
        samples, so the same node asks for the same samples however the search is scheduled."""
        key = f"{self.tree_id}/{kind}/{node_id}"
        if kind == "rollout":  # a node evaluated again (rollouts > 1 over the iterations) draws new samples
            key += f"/{self.nodes[node_id].evaluations}"
        return self.prompt_text + self.path_text(node_id), key

    def select(self, start: int, params: MCTSParams) -> int:
        node = self.nodes[start]
        score = SCORES[params.score]
        while node.children:
            scores = [score(self.nodes[i], node, params.c) for i in node.children]
            best = max(scores)
            node = self.nodes[self.rng.choice([i for i, s in zip(node.children, scores) if s == best])]
        return node.node_id

    def expandable(self, node_id: int, params: MCTSParams) -> bool:
        node = self.nodes[node_id]
        return node.visits > 0 and not node.terminal and node.depth < params.max_depth

    def add_children(self, parent_id: int, chunks: Sequence[tuple[str, int, bool]], cut_steps: str = "end") -> None:
        """Add (text, tokens, stopped) chunks as children, duplicates dropped; `cut_steps` says whether a
        chunk cut at the token limit is terminal ("end") or a partial step to go on from ("continue")."""
        parent = self.nodes[parent_id]
        seen = set()
        for text, n_tokens, stopped in chunks:
            if text.strip() in seen:
                continue  # duplicate sibling
            seen.add(text.strip())
            terminal = ends_response(text, stopped, cut_steps)
            child = Node(len(self.nodes), parent_id, parent.depth + 1, text, parent.n_tokens + n_tokens, terminal)
            self.nodes.append(child)
            parent.children.append(child.node_id)

    def backup(self, node_id: int, reward: float) -> None:
        self.nodes[node_id].evaluations += 1
        while node_id is not None:
            node = self.nodes[node_id]
            node.visits += 1
            node.value_sum += reward
            node_id = node.parent

    def rows(self, iteration: int) -> list[TreeNode]:
        return [
            TreeNode(
                tree_id=self.tree_id, prompt_id=self.prompt.id, iteration=iteration, kind=self.prompt.kind,
                node_id=n.node_id, parent_id=n.parent, depth=n.depth, step=n.step, n_tokens=n.n_tokens,
                visits=n.visits, evaluations=n.evaluations, value_sum=round(n.value_sum, 6),
                value=round(n.value, 6), terminal=n.terminal, reward=n.reward, safety=n.safety,
                helpfulness=n.helpfulness, rollout=n.rollout, rollout_reward=n.rollout_reward,
            )
            for n in self.nodes
        ]


@dataclass
class SearchStats:
    trees: int = 0
    nodes: int = 0
    generate_calls: int = 0
    judge_calls: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


class SIMCTS:
    """Runs SI-MCTS over many prompts at once with one backend and one judge."""

    def __init__(self, backend: Backend, judge: Judge, params: MCTSParams):
        self.backend, self.judge, self.params = backend, judge, params
        self.expand_sampling = Sampling(params.temperature, params.top_p, params.top_k, params.max_step_tokens)
        self.rollout_sampling = Sampling(params.temperature, params.top_p, params.top_k, params.max_response_tokens)
        self.stats = SearchStats()

    def _generate(self, prompts: list[str], n: int, sampling: Sampling, mode: str, keys: list[str]):
        """Generate through the backend; one that seeds by key (`keyed`) gets each request's key, so a
        node's samples do not depend on which other requests share the call."""
        if not prompts:
            return []
        self.stats.generate_calls += 1
        if getattr(self.backend, "keyed", False):
            out = self.backend.generate(prompts, n, sampling, mode, keys=keys)
        else:
            out = self.backend.generate(prompts, n, sampling, mode)
        self.stats.generated_tokens += sum(c.n_tokens for samples in out for c in samples)
        return out

    def _expand(self, trees: list[Tree]) -> dict[int, int]:
        """Select a leaf in every tree; expand the visited ones in one call. Returns tree index -> node to evaluate."""
        selected = {i: tree.select(0, self.params) for i, tree in enumerate(trees)}
        to_expand = [i for i, node in selected.items() if trees[i].expandable(node, self.params)]
        requests = [trees[i].request(selected[i], "expand") for i in to_expand]
        outputs = self._generate([prompt for prompt, _ in requests], self.params.children, self.expand_sampling,
                                 "step", [key for _, key in requests])
        for i, samples in zip(to_expand, outputs):
            trees[i].add_children(selected[i], [(s.text, s.n_tokens, s.stopped) for s in samples],
                                  self.params.cut_steps)
            selected[i] = trees[i].select(selected[i], self.params)
        return selected

    @staticmethod
    def triage(work: list[tuple[Tree, int]]) -> tuple[list[tuple[Tree, int, str | None]], list[tuple[Tree, int]]]:
        """Start evaluating nodes: back up a terminal node's known reward now; return the terminal nodes to judge
        as they stand (with no rollout text) and the other nodes, to judge after a rollout."""
        to_judge, rollouts = [], []
        for tree, node_id in work:
            node = tree.nodes[node_id]
            if node.terminal and node.reward is not None:
                tree.backup(node_id, node.reward)
            elif node.terminal:
                to_judge.append((tree, node_id, None))
            else:
                rollouts.append((tree, node_id))
        return to_judge, rollouts

    def _evaluate(self, work: list[tuple[Tree, int]]) -> None:
        """Evaluate nodes: reuse a terminal reward, else judge the response (after a rollout if not terminal)."""
        to_judge, rollouts = self.triage(work)  # to_judge: (tree, node, rollout text once one is sampled)
        requests = [t.request(n, "rollout") for t, n in rollouts]
        outputs = self._generate([prompt for prompt, _ in requests], self.params.rollouts, self.rollout_sampling,
                                 "response", [key for _, key in requests])
        for (tree, node_id), samples in zip(rollouts, outputs):
            to_judge += [(tree, node_id, sample.text) for sample in samples]
        self.judge_and_back_up(to_judge)

    def judge_and_back_up(self, work: list[tuple[Tree, int, str | None]]) -> None:
        """Judge (tree, node, rollout text or None for a terminal step) in one call, in order: a terminal node
        keeps its scores, a node keeps its first rollout and that rollout's reward; back each reward up."""
        if not work:
            return
        self.stats.judge_calls += 1
        scores: list[Scored] = self.judge([t.prompt for t, _, _ in work],
                                          [t.path_text(n) + (r or "") for t, n, r in work])
        for (tree, node_id, rollout), score in zip(work, scores):
            node = tree.nodes[node_id]
            if node.terminal:
                node.reward, node.safety, node.helpfulness = score.reward, score.safety, score.helpfulness
            elif node.rollout is None:  # the first rollout is kept: a whole answer with its reward, for the PRM
                node.rollout, node.rollout_reward = rollout, score.reward
            tree.backup(node_id, score.reward)

    def tick(self, trees: list[Tree]) -> list[Tree]:
        """One lock-step round over the active trees; returns the trees that finished."""
        searching = [t for t in trees if t.iterations_done < self.params.iterations]
        finishing = [t for t in trees if t.iterations_done >= self.params.iterations]
        selected = self._expand(searching)
        work = [(searching[i], node_id) for i, node_id in selected.items()]
        if self.params.visit_all:
            work += [(t, n.node_id) for t in finishing for n in t.nodes if n.visits == 0]
        self._evaluate(work)
        for tree in searching:
            tree.iterations_done += 1
        return finishing

    def _streams(self) -> bool:
        """Whether this search can run without the tick barrier: a backend that streams (the transformers engine)
        and judges that apply rules (a model judge, asked one answer at a time, would run as many small calls)."""
        if getattr(self.backend, "stream", None) is not None and not getattr(self.judge, "uses_model", True):
            return True
        log.warning("mcts.tick_barrier: false needs backend.name: transformers and rule judges; searching in "
                    "lock-step ticks")
        return False

    def run(
        self,
        trees: Sequence[Tree],
        on_done: Callable[[Tree], None] = lambda tree: None,
        progress: Callable[[Tree], None] = lambda tree: None,
        active: Sequence[Tree] = (),
        on_tick: Callable[[list[Tree], list[Tree]], None] = lambda active, waiting: None,
        quiet_every_s: float = math.inf,
    ) -> None:
        """Search every tree to completion, `concurrent_trees` at a time, calling `on_done` per finished tree.

        `active` are trees already in the pool (a resumed search), searched before any of `trees`. In lock-step
        ticks `on_tick(active, waiting)` is called after every tick, once finished trees are handed over.
        Without the tick barrier (`tick_barrier: false`, a backend that streams and rule judges: `_Unbarriered`)
        it is called at quiet points, every tree between two rounds and no request in flight, reached every
        `quiet_every_s` seconds.
        """
        start = time.perf_counter()
        # One prompt cache for the whole run, emptied here (the module docstring says why, and what resuming costs).
        forget_prefixes = getattr(self.backend, "forget_prefixes", None)
        if forget_prefixes is not None:
            forget_prefixes()
        waiting = list(trees)[::-1]
        active = list(active)

        def finish(tree: Tree) -> None:
            active.remove(tree)
            self.stats.trees += 1
            self.stats.nodes += len(tree.nodes)
            on_done(tree)
            progress(tree)

        def fill() -> list[Tree]:
            joining = []
            while waiting and len(active) < self.params.concurrent_trees:
                joining.append(waiting.pop())
                active.append(joining[-1])
            return joining

        if not self.params.tick_barrier and self._streams():
            _Unbarriered(self, active, waiting, finish, fill, on_tick, quiet_every_s).run()
        else:
            while waiting or active:
                fill()
                for tree in self.tick(active):
                    finish(tree)
                on_tick(active, waiting[::-1])
        self.stats.seconds += time.perf_counter() - start


class _Unbarriered:
    """SI-MCTS without a tick barrier: every tree goes through the rounds of `SIMCTS.tick` (select, expand the
    leaf if visited, select, evaluate; after its last iteration, the visit-all pass), but a tree's next request
    goes to the backend as soon as its last one is back, so no tree waits for the slowest of a tick. A round
    asks for the same samples under the same keys as in lock-step, and its backups land in lock-step's order
    (the visit-all round's rollouts are held until all are back) before the tree selects again, so each tree is
    built as in lock-step, up to the rounding a different batch can cause in the samples themselves.

    Quiet points, for checkpoints: every `quiet_every_s` seconds, trees that end a round wait instead of
    starting the next, until no request is in flight; then `on_tick(active, waiting)` and all go on.
    """

    def __init__(self, search: SIMCTS, active: list[Tree], waiting: list[Tree], finish: Callable[[Tree], None],
                 fill: Callable[[], list[Tree]], on_tick: Callable[[list[Tree], list[Tree]], None],
                 quiet_every_s: float):
        self.search, self.params = search, search.params
        # Expansions and rollouts share temperature, top-p and top-k; each request sets its own token limit.
        # Requests come one by one: joining only once the waiting samples are half the running ones cut the
        # default's iteration-1 search from 34.5 to 31.7 s here (prefill passes with one or two rows).
        self.stream = search.backend.stream(search.expand_sampling, join_share=0.5)
        self.active, self.waiting, self.finish, self.fill, self.on_tick = active, waiting, finish, fill, on_tick
        self.quiet_every_s = quiet_every_s
        self.requests: dict[int, tuple[Tree, int, str]] = {}  # stream request -> (tree, node, expand | rollout)
        self.to_judge: list[tuple[Tree, int, str | None]] = []  # (tree, node, rollout text if one was sampled)
        self.open: dict[str, int] = {}  # tree id -> requests and judgements of its round not back yet
        self.last_round: dict[str, list[int]] = {}  # trees in their visit-all round -> the nodes rolled out
        self.held: dict[str, dict[int, list[str]]] = {}  # their rollouts back so far: node -> texts
        self.ended: list[Tree] = []  # trees whose round has everything back
        self.parked: list[Tree] = []  # trees waiting for a quiet point

    def run(self) -> None:
        self.last_quiet = time.monotonic()
        self.fill()
        for tree in list(self.active):
            self.begin(tree)
        self.settle()
        while self.active:
            if self.stream.busy:
                for request in self.stream.step():
                    self.returned(request)
                self.settle()
            if not self.stream.busy and not self.to_judge:  # a quiet point: every active tree is parked
                self.on_tick(self.active, self.waiting[::-1])
                self.last_quiet = time.monotonic()
                parked, self.parked = self.parked, []
                for tree in parked:
                    self.begin(tree)
                self.settle()

    def begin(self, tree: Tree) -> None:
        """Start a tree's next round: its search step, or the visit-all pass after its last iteration."""
        self.open[tree.tree_id] = 0
        if tree.iterations_done < self.params.iterations:
            node_id = tree.select(0, self.params)
            if tree.expandable(node_id, self.params):
                self.ask(tree, node_id, "expand")
            else:
                self.evaluate(tree, [node_id])
        else:
            self.last_round[tree.tree_id], self.held[tree.tree_id] = [], {}
            self.evaluate(tree, [n.node_id for n in tree.nodes if n.visits == 0] if self.params.visit_all else [])
        self.close(tree)

    def ask(self, tree: Tree, node_id: int, kind: str) -> None:
        expand = kind == "expand"
        prompt, key = tree.request(node_id, kind)
        request = self.stream.add(prompt, self.params.children if expand else self.params.rollouts,
                                  "step" if expand else "response", key,
                                  None if expand else self.params.max_response_tokens)
        self.requests[request] = (tree, node_id, kind)
        self.open[tree.tree_id] += 1
        if not expand and tree.tree_id in self.last_round:
            self.last_round[tree.tree_id].append(node_id)
        self.search.stats.generate_calls += 1

    def evaluate(self, tree: Tree, node_ids: list[int]) -> None:
        """As `SIMCTS._evaluate` for one tree: reuse a terminal reward, judge a terminal step, roll out the rest."""
        to_judge, rollouts = SIMCTS.triage([(tree, node_id) for node_id in node_ids])
        self.to_judge += to_judge
        self.open[tree.tree_id] += len(to_judge)
        for _, node_id in rollouts:
            self.ask(tree, node_id, "rollout")

    def returned(self, request: int) -> None:
        tree, node_id, kind = self.requests.pop(request)
        samples = self.stream.completions(request)
        self.search.stats.generated_tokens += sum(c.n_tokens for c in samples)
        if kind == "expand":
            tree.add_children(node_id, [(c.text, c.n_tokens, c.stopped) for c in samples], self.params.cut_steps)
            self.evaluate(tree, [tree.select(node_id, self.params)])
        elif tree.tree_id in self.last_round:  # judged and backed up in the order they were asked for
            held = self.held[tree.tree_id]
            held[node_id] = [c.text for c in samples]
            if len(held) == len(self.last_round[tree.tree_id]):
                self.judge_rollouts(tree, [(n, held[n]) for n in self.last_round[tree.tree_id]])
        else:
            self.judge_rollouts(tree, [(node_id, [c.text for c in samples])])
        self.open[tree.tree_id] -= 1
        self.close(tree)

    def judge_rollouts(self, tree: Tree, rollouts: list[tuple[int, list[str]]]) -> None:
        for node_id, texts in rollouts:
            self.to_judge += [(tree, node_id, text) for text in texts]
            self.open[tree.tree_id] += len(texts)

    def close(self, tree: Tree) -> None:
        if not self.open[tree.tree_id]:
            self.ended.append(tree)

    def settle(self) -> None:
        """Judge what is waiting (one call), end the rounds that have everything back and start the next ones,
        until nothing is left to judge."""
        while True:
            while self.ended:
                self.end_round(self.ended.pop(0))
            if not self.to_judge:
                return
            judged, self.to_judge = self.to_judge, []
            self.search.judge_and_back_up(judged)
            for tree, _, _ in judged:
                self.open[tree.tree_id] -= 1
                self.close(tree)

    def end_round(self, tree: Tree) -> None:
        if tree.tree_id in self.last_round:
            del self.last_round[tree.tree_id], self.held[tree.tree_id]
            self.finish(tree)
            joining = self.fill()
        else:
            tree.iterations_done += 1
            joining = [tree]
        for next_tree in joining:
            if time.monotonic() - self.last_quiet >= self.quiet_every_s:
                self.parked.append(next_tree)
            else:
                self.begin(next_tree)


def make_trees(prompts: Sequence[SeedPrompt], prompt_texts: Sequence[str], prompt_tokens: Sequence[int],
               iteration: int, seed: int) -> list[Tree]:
    """One tree per prompt; the tree id ties it to the prompt and the iteration."""
    return [
        Tree(f"{iteration}:{p.id}", p, text, tokens, seed)
        for p, text, tokens in zip(prompts, prompt_texts, prompt_tokens)
    ]


def tree_metrics(rows: Sequence[TreeNode], stats: SearchStats) -> dict:
    """Per-iteration search metrics for DVC: size, shape and root values of the trees (no wall-clock time)."""
    roots = [r for r in rows if r.parent_id is None]
    nodes = [r for r in rows if r.parent_id is not None]
    metrics = {
        "trees": len(roots),
        "nodes": len(nodes),
        "terminal_share": round(sum(r.terminal for r in nodes) / max(len(nodes), 1), 4),
        "mean_root_value": round(sum(r.value for r in roots) / max(len(roots), 1), 4),
        "max_depth": max((r.depth for r in rows), default=0),
        "generate_calls": stats.generate_calls,
        "judge_calls": stats.judge_calls,
    }
    return metrics


def search_timings(stats: SearchStats) -> dict:
    """How fast this run searched: wall-clock numbers, kept apart from the metrics, which change only with results."""
    timings = {"search_seconds": round(stats.seconds, 1)}
    if stats.seconds > 0:
        timings["nodes_per_s"] = round(stats.nodes / stats.seconds, 2)
        timings["generated_tokens_per_s"] = round(stats.generated_tokens / stats.seconds, 1)
    return timings
