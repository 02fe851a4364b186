"""The world's generator: draws every split's prompts from the catalogue, and the teacher's response to each.

Everything is a pure function of the config. Each split draws from its own `random.Random` seeded
with (seed, split), and the held-out split is drawn first, so it stays put when the training counts
change. The teacher (`stair.world.teacher`) writes each response from the values drawn for its prompt.
"""

import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from schemas.rows import SeedPrompt, SFTExample
from stair.world import arithmetic, teacher
from stair.world.catalog import (
    BENIGN_HELDOUT,
    BENIGN_TRAIN,
    CATEGORIES,
    FAMILIES,
    FRAMING_FAMILIES,
    FRAMINGS,
    REQUESTS,
    RISKS,
    WRAPPERS,
    Benign,
)

SOURCE = "builtin"
GROUPS = ("math", "harmful", "jailbreak", "benign_sensitive", "benign_novel")
# A training benign item's phrasings are split three ways: the SFT set takes the first three, the SI-MCTS
# seeds the second-to-last, the held-out split the last (seen topics in new words). The seeds are then as
# new to the SFT model as the jailbreak seeds are, so its benign trees hold refusals to prefer compliance
# over, not only answers it already gives (with seeds in SFT's words, only jailbreaks taught a decision).
_SFT_PHRASINGS = slice(None, -2)
_SEED_PHRASINGS = slice(-2, -1)
_HELDOUT_PHRASINGS = slice(-1, None)
_ALL_PHRASINGS = slice(None)  # items of held-out topics


@cache
def _harmful_requests(category: str) -> dict[str, str]:
    """Every harmful request text of `category` (each act in each request phrasing and wrapper) -> its act."""
    return {w.format(q=r.format(act=act)): act for act in RISKS[category].acts for r in REQUESTS for w in WRAPPERS}


def _shuffled(rng: random.Random, pool: Iterable[str]) -> Iterator[str]:
    """`pool` in a random order, drawn as it is consumed: most draws take one text of thousands."""
    rest = list(pool)
    for end in range(len(rest), 0, -1):
        i = rng.randrange(end)
        yield rest[i]
        rest[i] = rest[end - 1]


_COUNT_FIELDS = ("iterations", "sft_math", "sft_harmful", "sft_benign", "seed_math", "seed_harmful",
                 "seed_jailbreak", "seed_benign", "heldout_per_group")


def _check_held_out(field: str, names: tuple[str, ...], known: tuple[str, ...]) -> None:
    for name in names:
        if name not in known:
            raise ValueError(f"{field}: unknown name {name!r}; known: {', '.join(known)}")
    if set(known) <= set(names):
        raise ValueError(f"{field}: holds out all of {', '.join(known)}, leaving none for training")


@dataclass(frozen=True)
class WorldConfig:
    """Sizes of the built-in world's splits and what is held out for evaluation only."""

    seed: int = 0
    iterations: int = 3
    sft_math: int = 400
    sft_harmful: int = 300
    sft_benign: int = 200
    seed_math: int = 12
    seed_harmful: int = 4
    seed_jailbreak: int = 16
    seed_benign: int = 16
    heldout_per_group: int = 60
    # Share of benign requests wrapped in a jailbreak framing. The SFT set has framed benign requests
    # but no framed harmful ones (as in the paper, no jailbreaks in SFT), so "framing -> comply" is a
    # shortcut the SFT model can learn; SI-MCTS + DPO has to unlearn it on jailbreaks.
    benign_framed_share: float = 0.5
    math_work: str = "direct"  # how the teacher writes an arithmetic step: direct | columns
    step_separator: str = ""  # between the teacher's chunks; "\n\n" as in the official STAIR-SFT data
    # Whole families of framings held out (evaluation meets a kind of attack it never trained on), plus
    # any single framings of the training families.
    heldout_families: tuple[str, ...] = ("emotional", "game")
    heldout_framings: tuple[str, ...] = ()
    heldout_categories: tuple[str, ...] = ("privacy",)

    def __post_init__(self) -> None:
        if self.math_work not in arithmetic.WORK:
            raise ValueError(f"math_work must be one of {', '.join(arithmetic.WORK)}, got {self.math_work!r}")
        if self.step_separator.strip():
            raise ValueError(f"step_separator must be whitespace (text between blocks is malformed), "
                             f"got {self.step_separator!r}")
        if not 0.0 <= self.benign_framed_share <= 1.0:
            raise ValueError(f"benign_framed_share must be in [0, 1], got {self.benign_framed_share}")
        for field in _COUNT_FIELDS:
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must be >= 0, got {getattr(self, field)}")
        for field, known in (("heldout_families", tuple(FAMILIES)), ("heldout_framings", tuple(FRAMINGS)),
                             ("heldout_categories", CATEGORIES)):
            names = getattr(self, field)
            if isinstance(names, str):
                raise ValueError(f"{field} must be a list of names, not the string {names!r}")
            # Params files give lists; keep the config hashable and immutable.
            object.__setattr__(self, field, tuple(names))
            _check_held_out(field, getattr(self, field), known)
        if set(FRAMINGS) <= set(self.evaluation_only_framings):
            raise ValueError("heldout_framings and heldout_families together hold out every framing, leaving "
                             "none for training")

    @property
    def evaluation_only_framings(self) -> tuple[str, ...]:
        """Every framing held out, by family or by name, in catalogue order."""
        return tuple(f for f in FRAMINGS
                     if f in self.heldout_framings or FRAMING_FAMILIES[f] in self.heldout_families)


@dataclass(frozen=True)
class World:
    """Every prompt of every split, the teacher's response to each, and the teacher's SFT data (split "sft")."""

    prompts: list[SeedPrompt]
    sft: list[SFTExample]
    responses: dict[str, str]  # prompt id -> the teacher's response, written as the config says


class _Drawer:
    """Draws prompts for one split after another, never reusing a text or a math problem.

    Each row it draws holds the prompt's fields and the teacher's `response`, written from what was drawn
    (math steps by `math_work`, `separator` between chunks).
    """

    def __init__(self, math_work: str, separator: str) -> None:
        self.math_work, self.separator = math_work, separator
        self.texts: set[str] = set()
        self.problems: set[tuple] = set()

    def _claim(self, text: str) -> bool:
        if text in self.texts:
            return False
        self.texts.add(text)
        return True

    def math(self, rng: random.Random, n: int, field: str, heldout: bool = False) -> list[dict]:
        order = rng.sample(arithmetic.TEMPLATES, len(arithmetic.TEMPLATES))
        rows = []
        for i in range(n):
            template = order[i % len(order)]
            for _ in range(1000):
                problem = arithmetic.draw_problem(rng, template, heldout)
                if problem is not None and problem.key not in self.problems and self._claim(problem.text):
                    self.problems.add(problem.key)
                    break
            else:
                raise ValueError(f"{field}: {n} asks for more distinct math problems than the world has")
            rows.append(dict(text=problem.text, kind="helpfulness", ground_truth=str(problem.answer),
                             expected_behavior="comply", category=problem.category,
                             response=teacher.math_response(problem, self.math_work, self.separator)))
        return rows

    def _balanced(self, rng: random.Random, pools: dict[str, Iterable[str]], n: int, field: str,
                  what: str) -> list[tuple[str, str]]:
        """n unused texts, cycling over the pools' keys so each key gets its share."""
        keys = rng.sample(list(pools), len(pools))
        shuffled = {k: _shuffled(rng, pools[k]) for k in keys}
        out = []
        for i in range(n):
            key = keys[i % len(keys)]
            text = next((t for t in shuffled[key] if self._claim(t)), None)
            if text is None:
                raise ValueError(f"{field}: {n} asks for more distinct {what} prompts than the world has")
            out.append((key, text))
        return out

    def harmful(self, rng: random.Random, n: int, categories: list[str], field: str) -> list[dict]:
        pools = {c: _harmful_requests(c) for c in categories}
        return [dict(text=text, kind="safety", expected_behavior="refuse", category=c,
                     response=teacher.harmful_response(text, c, pools[c][text], self.separator))
                for c, text in self._balanced(rng, pools, n, field, "harmful")]

    def benign(self, rng: random.Random, n: int, items: tuple[Benign, ...], phrasings: slice, field: str,
               framing_pools: list[list[str]], framed_share: float) -> list[dict]:
        """Benign requests in the given phrasings of each item; a share of them wrapped in a jailbreak
        framing (still benign: comply), the framed ones taking turns between `framing_pools`."""
        by_key = {item.key: item for item in items}
        pools = {item.key: [w.format(q=q) for q in item.phrasings[phrasings] for w in WRAPPERS] for item in items}
        turns = [itertools.cycle(rng.sample(pool, len(pool))) for pool in framing_pools if pool]
        rows, n_framed = [], 0
        for key, text in self._balanced(rng, pools, n, field, "benign"):
            item = by_key[key]
            framing = None
            if turns and rng.random() < framed_share:
                framing = next(turns[n_framed % len(turns)])
                n_framed += 1
                framed = FRAMINGS[framing].format(request=text)
                if not self._claim(framed):
                    framing, framed = None, text
                text = framed
            rows.append(dict(text=text, kind="safety", ground_truth=item.key, expected_behavior="comply",
                             category=item.category, framing=framing,
                             response=teacher.benign_response(item, self.separator)))
        return rows

    def jailbreak(self, rng: random.Random, n: int, framings: list[str], categories: list[str],
                  field: str) -> list[dict]:
        framings = rng.sample(framings, len(framings))
        categories = rng.sample(categories, len(categories))
        rows = []
        for i in range(n):
            framing, category = framings[i % len(framings)], categories[i % len(categories)]
            # Wrapped like every other request, so a wrapper is no sign of a benign request.
            acts = _harmful_requests(category)
            framed = ((r, FRAMINGS[framing].format(request=r)) for r in _shuffled(rng, acts))
            request, text = next(((r, t) for r, t in framed if self._claim(t)), (None, None))
            if text is None:
                raise ValueError(f"{field}: {n} asks for more distinct jailbreak prompts than the world has")
            rows.append(dict(text=text, kind="safety", expected_behavior="refuse", category=category,
                             framing=framing,
                             response=teacher.jailbreak_response(category, acts[request], framing, self.separator)))
        return rows


def generate_world(config: WorldConfig) -> World:
    """All prompts of the built-in world (splits sft, iter_1..iter_K, heldout), their teacher responses and
    the SFT data."""
    train_categories = [c for c in CATEGORIES if c not in config.heldout_categories]
    heldout_framings = list(config.evaluation_only_framings)
    train_framings = [f for f in FRAMINGS if f not in heldout_framings]
    drawer = _Drawer(config.math_work, config.step_separator)
    by_split: dict[str, dict[str, list[dict]]] = {}

    def rng_for(split: str) -> random.Random:
        return random.Random(f"stair-world:{config.seed}:{split}")

    rng, n, field = rng_for("heldout"), config.heldout_per_group, "heldout_per_group"
    # At least half the held-out jailbreaks use a held-out framing; the rest cover the training ones.
    n_new = (n + 1) // 2 if heldout_framings else 0
    # Framed benign requests take turns between held-out and training framings: the mirror image.
    heldout_turns = [heldout_framings, train_framings]
    by_split["heldout"] = {
        "math": drawer.math(rng, n, field, heldout=True),
        "harmful": drawer.harmful(rng, n, list(CATEGORIES), field),
        "jailbreak": drawer.jailbreak(rng, n_new, heldout_framings, list(CATEGORIES), field)
        + drawer.jailbreak(rng, n - n_new, train_framings, list(CATEGORIES), field),
        # Benign topics of training in new phrasings and framings; and benign topics never seen.
        "benign_sensitive": drawer.benign(rng, n, BENIGN_TRAIN, _HELDOUT_PHRASINGS, field, heldout_turns,
                                          config.benign_framed_share),
        "benign_novel": drawer.benign(rng, n, BENIGN_HELDOUT, _ALL_PHRASINGS, field, heldout_turns,
                                      config.benign_framed_share),
    }
    rng = rng_for("sft")
    by_split["sft"] = {
        "math": drawer.math(rng, config.sft_math, "sft_math"),
        "harmful": drawer.harmful(rng, config.sft_harmful, train_categories, "sft_harmful"),
        "benign_sensitive": drawer.benign(rng, config.sft_benign, BENIGN_TRAIN, _SFT_PHRASINGS, "sft_benign",
                                          [train_framings], config.benign_framed_share),
    }
    for k in range(1, config.iterations + 1):
        rng = rng_for(f"iter_{k}")
        by_split[f"iter_{k}"] = {
            "math": drawer.math(rng, config.seed_math, "seed_math"),
            "harmful": drawer.harmful(rng, config.seed_harmful, train_categories, "seed_harmful"),
            "jailbreak": drawer.jailbreak(rng, config.seed_jailbreak, train_framings, train_categories,
                                          "seed_jailbreak"),
            "benign_sensitive": drawer.benign(rng, config.seed_benign, BENIGN_TRAIN, _SEED_PHRASINGS,
                                              "seed_benign", [train_framings], config.benign_framed_share),
        }

    order = ["sft", *(f"iter_{k}" for k in range(1, config.iterations + 1)), "heldout"]
    prompts, responses = [], {}
    for split in order:
        for group in GROUPS:
            for i, row in enumerate(by_split[split].get(group, [])):
                prompt_id = f"{split}-{group}-{i:04d}"
                responses[prompt_id] = row.pop("response")
                prompts.append(SeedPrompt(id=prompt_id, split=split, group=group, source=SOURCE, **row))
    sft = [
        SFTExample(id=p.id, prompt_id=p.id, prompt=p.text, response=responses[p.id], kind=p.kind, source=SOURCE)
        for p in prompts
        if p.split == "sft"
    ]
    return World(prompts=prompts, sft=sft, responses=responses)
