"""The built-in task world: determinism, split hygiene, labels and teacher responses."""

import hashlib
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import EvalRecord, SeedPrompt
from stair.evaluation import family_breakdown
from stair.format import parse_response
from stair.judges import is_refusal
from stair.world import (
    CATEGORIES,
    FAMILIES,
    FRAMING_FAMILIES,
    FRAMINGS,
    GROUPS,
    World,
    WorldConfig,
    generate_world,
)
from stair.world.arithmetic import column_work
from stair.world.catalog import BENIGN_HELDOUT, BENIGN_TRAIN, FRAMING_NOTES, REQUESTS, RISKS, WRAPPERS

NOT_COMPLYING = ("Sorry", "I can't", "I cannot", "I won't")


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig())


def _answer(world: World, prompt: SeedPrompt) -> str:
    parsed = parse_response(world.responses[prompt.id])
    assert parsed.format_ok, parsed.issues
    return parsed.answer


# sha256 of the default run's world (params.yaml data.world, 3 iterations, seed 0): its prompts and SFT
# examples, then the teacher's response to every prompt, one JSON line each. Computed on the code from before
# the catalogue became data and the teacher wrote each response as its prompt was drawn (it re-parsed the
# prompt's text then): those refactorings left the world byte for byte as it was. Updated when the benign
# seeds moved to a phrasing of their own, and when SFT gained two phrasings per benign topic (the prompts
# moved; the responses did not: a benign response depends on its topic only). A change that means to move
# the world updates them.
DEFAULT_WORLD = dict(sft_math=400, sft_harmful=300, sft_benign=200, seed_math=12, seed_harmful=4,
                     seed_jailbreak=16, seed_benign=16, heldout_per_group=60, iterations=3, seed=0)
DEFAULT_WORLD_SHA256 = "92ff2dfb480e4dd11a06c0e2fbfa49b5d0ed5b8207fc0a5c402f55877b401fa6"
DEFAULT_RESPONSES_SHA256 = "6249e5bc34d2f1afad95786429e0f91c129f72f9a8024a5869f8122fc329f5d4"


def test_the_default_world_is_byte_for_byte_pinned() -> None:
    world = generate_world(WorldConfig(**DEFAULT_WORLD))
    rows = hashlib.sha256()
    for row in [*world.prompts, *world.sft]:
        rows.update(row.model_dump_json().encode() + b"\n")
    assert rows.hexdigest() == DEFAULT_WORLD_SHA256
    responses = hashlib.sha256()
    for p in world.prompts:
        responses.update(p.id.encode() + b"\0" + world.responses[p.id].encode() + b"\n")
    assert responses.hexdigest() == DEFAULT_RESPONSES_SHA256


# sha256 of the default world's held-out prompts alone, one JSON line each: evaluation stays comparable across
# runs only while this holds. Computed before SFT gained two phrasings per benign topic, which left it as it was.
DEFAULT_HELDOUT_SHA256 = "da529c3b6bfd67ed0b5e1d01e3e52bcf15c1c384c3d3223f62a07fe7971c5d46"


def test_heldout_split_is_pinned(world: World) -> None:
    rows = hashlib.sha256()
    for p in world.prompts:
        if p.split == "heldout":
            rows.update(p.model_dump_json().encode() + b"\n")
    assert rows.hexdigest() == DEFAULT_HELDOUT_SHA256


def test_every_prompt_has_a_response_and_sft_uses_them(world: World) -> None:
    assert list(world.responses) == [p.id for p in world.prompts]
    assert [(e.prompt_id, e.response) for e in world.sft] == [
        (p.id, world.responses[p.id]) for p in world.prompts if p.split == "sft"]
    # How math steps are written and what goes between chunks change the responses, never the prompts.
    spaced = generate_world(WorldConfig(math_work="columns", step_separator="\n\n"))
    assert spaced.prompts == world.prompts
    changed = {p.group for p in world.prompts if spaced.responses[p.id] != world.responses[p.id]}
    assert changed == set(GROUPS)
    assert all(e.response == spaced.responses[e.prompt_id] for e in spaced.sft)


def test_same_config_same_world_and_seed_changes_it(world: World) -> None:
    again = generate_world(WorldConfig())
    assert again.prompts == world.prompts
    assert again.sft == world.sft
    other = generate_world(WorldConfig(seed=1))
    assert [p.text for p in other.prompts] != [p.text for p in world.prompts]


def test_counts_per_split_and_group() -> None:
    config = WorldConfig(iterations=2, sft_math=30, sft_harmful=20, sft_benign=10, seed_math=3,
                         seed_harmful=2, seed_jailbreak=5, seed_benign=1, heldout_per_group=7)
    world = generate_world(config)
    counts = Counter((p.split, p.group) for p in world.prompts)
    expected = {("sft", "math"): 30, ("sft", "harmful"): 20, ("sft", "benign_sensitive"): 10}
    for k in (1, 2):
        expected |= {(f"iter_{k}", "math"): 3, (f"iter_{k}", "harmful"): 2, (f"iter_{k}", "jailbreak"): 5,
                     (f"iter_{k}", "benign_sensitive"): 1}
    expected |= {("heldout", g): 7 for g in GROUPS}
    assert counts == expected
    assert [e.prompt_id for e in world.sft] == [p.id for p in world.prompts if p.split == "sft"]


def test_default_counts(world: World) -> None:
    counts = Counter((p.split, p.group) for p in world.prompts)
    assert counts[("sft", "math")] == 400 and counts[("sft", "harmful")] == 300
    assert counts[("sft", "benign_sensitive")] == 200 and counts[("sft", "jailbreak")] == 0
    for k in (1, 2, 3):
        assert [counts[(f"iter_{k}", g)] for g in GROUPS] == [12, 4, 16, 16, 0]
    assert [counts[("heldout", g)] for g in GROUPS] == [60] * 5
    assert len(world.sft) == 900


def test_ids_and_fields(world: World) -> None:
    assert len({p.id for p in world.prompts}) == len(world.prompts)
    for p in world.prompts:
        assert re.fullmatch(rf"{p.split}-{p.group}-\d{{4}}", p.id)
        assert p.source == "builtin"
        assert p.kind == ("helpfulness" if p.group == "math" else "safety")
        assert p.expected_behavior == ("refuse" if p.group in ("harmful", "jailbreak") else "comply")
        if p.group == "jailbreak":
            assert p.framing is not None
        elif p.group not in ("benign_sensitive", "benign_novel"):
            assert p.framing is None
        assert (p.ground_truth is not None) == (p.group in ("math", "benign_sensitive", "benign_novel"))
        if p.group in ("harmful", "jailbreak"):
            assert p.category in CATEGORIES


def test_every_teacher_response_is_well_formed_and_short(world: World) -> None:
    for example in world.sft:
        assert parse_response(example.response).format_ok
        assert len(example.response.split()) < 90 and len(example.response) < 700
    for p in world.prompts:
        parsed = parse_response(world.responses[p.id])
        # Math: the plan, then one step per operation (two or three); the rest: two or three steps.
        assert parsed.format_ok and 2 <= len(parsed.steps) <= (4 if p.group == "math" else 3)
        assert all(step.title for step in parsed.steps)
        assert len(p.text.split()) < 60


def test_no_prompt_text_in_two_splits(world: World) -> None:
    texts = [p.text for p in world.prompts]
    assert len(set(texts)) == len(texts)


def test_held_out_families_and_categories_stay_in_heldout(world: World) -> None:
    config = WorldConfig()
    held_families = set(config.heldout_families)
    assert len(held_families) == 2
    assert set(config.evaluation_only_framings) == {f for f in FRAMINGS if FRAMING_FAMILIES[f] in held_families}
    assert not any(p.group == "jailbreak" for p in world.prompts if p.split == "sft")
    for p in world.prompts:
        if p.split != "heldout":
            assert p.framing is None or FRAMING_FAMILIES[p.framing] not in held_families
            assert p.category not in config.heldout_categories
    heldout = [p for p in world.prompts if p.split == "heldout"]
    assert {p.category for p in heldout if p.group == "harmful"} == set(CATEGORIES)
    jailbreaks = [p for p in heldout if p.group == "jailbreak"]
    from_held = [p for p in jailbreaks if FRAMING_FAMILIES[p.framing] in held_families]
    assert len(from_held) == (len(jailbreaks) + 1) // 2
    assert {p.framing for p in from_held} == set(config.evaluation_only_framings)
    assert len({FRAMING_FAMILIES[p.framing] for p in jailbreaks} - held_families) >= 4
    # Held-out benign requests are framed by held-out and training families alike.
    for group in ("benign_sensitive", "benign_novel"):
        families = {FRAMING_FAMILIES[p.framing] for p in heldout if p.group == group and p.framing}
        assert families & held_families and families - held_families


def test_sft_keeps_the_benign_trap_with_training_families_only(world: World) -> None:
    framed = [p for p in world.prompts if p.split == "sft" and p.framing]
    assert all(p.group == "benign_sensitive" and p.expected_behavior == "comply" for p in framed)
    assert 0.3 < len(framed) / WorldConfig().sft_benign < 0.7
    families = {FRAMING_FAMILIES[p.framing] for p in framed}
    assert families == set(FAMILIES) - set(WorldConfig().heldout_families)


def test_iterations_use_training_framings_and_differ(world: World) -> None:
    iters = {k: {p.text for p in world.prompts if p.split == f"iter_{k}"} for k in (1, 2, 3)}
    assert iters[1].isdisjoint(iters[2]) and iters[2].isdisjoint(iters[3])
    framings = {p.framing for p in world.prompts if p.split.startswith("iter_") and p.group == "jailbreak"}
    assert framings <= set(FRAMINGS) - set(WorldConfig().evaluation_only_framings)


def test_single_framings_and_families_can_both_be_held_out() -> None:
    config = WorldConfig(heldout_families=("formatting",), heldout_framings=("dan_roleplay",), iterations=1,
                         sft_math=0, sft_harmful=10, sft_benign=40, heldout_per_group=20)
    held = set(config.evaluation_only_framings)
    assert held == {"dan_roleplay"} | {f for f in FRAMINGS if FRAMING_FAMILIES[f] == "formatting"}
    world = generate_world(config)
    assert all(p.framing not in held for p in world.prompts if p.split != "heldout")
    assert sum(p.framing in held for p in world.prompts if p.group == "jailbreak") == 10


def test_heldout_math_and_novel_benign_are_new(world: World) -> None:
    def problem(p: SeedPrompt) -> tuple:
        return p.category, tuple(re.findall(r"\d+", p.text))

    def items(split: str, group: str) -> set[str]:
        return {p.ground_truth for p in world.prompts if p.split == split and p.group == group}

    train_math = {problem(p) for p in world.prompts if p.split != "heldout" and p.group == "math"}
    assert not any(problem(p) in train_math for p in world.prompts if p.split == "heldout" and p.group == "math")
    seen = set().union(*(items(s, "benign_sensitive") for s in ("sft", "iter_1", "iter_2", "iter_3")))
    assert items("heldout", "benign_novel").isdisjoint(seen)
    assert items("heldout", "benign_sensitive") <= seen  # seen topics, new phrasings and framings
    assert not any(p.group == "benign_novel" for p in world.prompts if p.split != "heldout")


def test_benign_phrasings_split_between_sft_seeds_and_heldout(world: World) -> None:
    """SFT uses a training topic's first three phrasings, the SI-MCTS seeds its fourth, the held-out set its
    fifth."""
    index_of = {q: i for item in BENIGN_TRAIN for i, q in enumerate(item.phrasings)}
    split_of = {0: "sft", 1: "sft", 2: "sft", 3: "iter", 4: "heldout"}
    used = set()
    for p in world.prompts:
        if p.group == "benign_sensitive":
            # The longest phrasing in the text (one held-out phrasing quotes an SFT one whole).
            phrasing = max((q for q in index_of if q in p.text), key=len)
            assert p.split.startswith(split_of[index_of[phrasing]]), (p.split, p.text)
            used.add(index_of[phrasing])
    assert used == set(split_of)


def test_heldout_does_not_move_with_training_counts(world: World) -> None:
    smaller = generate_world(WorldConfig(sft_math=50, sft_harmful=20, iterations=1))
    assert [p for p in smaller.prompts if p.split == "heldout"] == [
        p for p in world.prompts if p.split == "heldout"
    ]


def test_refusals_and_compliant_answers(world: World) -> None:
    for p in world.prompts:
        answer = _answer(world, p)
        if p.expected_behavior == "refuse":
            assert answer.startswith("Sorry, I can't help with") and "Instead, " in answer
            assert len(answer) < 350
        else:
            assert not any(marker in answer for marker in NOT_COMPLYING), answer


def test_math_ground_truth_is_correct_and_taught(world: World) -> None:
    column_responses = generate_world(WorldConfig(math_work="columns")).responses
    ops = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y}
    symbols = {"+": ops["add"], "-": ops["sub"], "*": ops["mul"], "/": lambda x, y: x / y}
    math_prompts = [p for p in world.prompts if p.group == "math"]
    assert len({p.category for p in math_prompts}) >= 5
    for p in math_prompts:
        # The world writes the operands in the order they are applied.
        first, *rest = (int(n) for n in re.findall(r"\d+", p.text))
        value = first
        for name, operand in zip(p.category.split("_"), rest, strict=True):
            value = ops[name](value, operand)
        assert 0 <= value <= 200 and p.ground_truth == str(value)
        assert _answer(world, p).endswith(f"The answer is {value}.")
        direct = re.findall(r"^(\d+)([-+*])(\d+)=(\d+)(?=<)", world.responses[p.id], flags=re.M)
        assert len(direct) == len(p.category.split("_"))  # the default: one line per operation
        assert all(symbols[op](int(x), int(y)) == int(z) for x, op, y, z in direct)
        response = column_responses[p.id]
        results = re.findall(r"^(\d+)([-+*])(\d+)=(\d+)(?=<|$)", response, flags=re.M)
        assert len(results) == len(p.category.split("_"))
        assert int(results[-1][3]) == value
        for x, op, y, z in results:
            assert symbols[op](int(x), int(y)) == int(z)
        columns = re.findall(r"^1?(\d)([-+*])(\d)[-+](\d)=(\d+)$", response, flags=re.M)
        assert len(columns) >= len(results)
        for x, op, y, c, z in columns:
            column = symbols[op](int(x), int(y)) + (int(c) if op != "-" else -int(c))
            assert column % 10 == int(z) % 10


@pytest.mark.parametrize(("x", "op", "y", "lines"), [
    (47, "+", 38, ["47+38:", "7+8+0=15", "4+3+1=8", "47+38=85"]),
    (52, "-", 17, ["52-17:", "12-7-0=5", "5-1-1=3", "52-17=35"]),
    (30, "-", 28, ["30-28:", "10-8-0=2", "3-2-1=0", "30-28=2"]),
    (7, "*", 9, ["7*9:", "7*9+0=63", "0*9+6=6", "7*9=63"]),
    (5, "+", 17, ["5+17:", "5+7+0=12", "0+1+1=2", "5+17=22"]),
])
def test_column_work_by_hand(x: int, op: str, y: int, lines: list[str]) -> None:
    assert column_work(x, op, y).split("\n") == lines


@given(st.integers(1, 99), st.sampled_from("+-*"), st.integers(1, 99))
def test_column_digits_spell_the_result(x: int, op: str, y: int) -> None:
    if op == "*":
        y = y % 8 + 2
    if op == "-" and y > x:
        x, y = y, x
    lines = column_work(x, op, y).split("\n")
    digits = [int(line.split("=")[1]) % 10 for line in lines[1:-1]]
    result = sum(d * 10**i for i, d in enumerate(digits))
    assert result == {"+": x + y, "-": x - y, "*": x * y}[op] == int(lines[-1].split("=")[1])


def test_benign_answers_contain_their_key_phrase(world: World) -> None:
    for p in world.prompts:
        if p.group == "benign_sensitive":
            assert p.ground_truth in _answer(world, p)


def test_world_is_varied_enough(world: World) -> None:
    assert len({p.ground_truth for p in world.prompts if p.group == "benign_sensitive"}) >= 60
    assert len(BENIGN_TRAIN) >= 60 and len(BENIGN_HELDOUT) >= 24
    assert len(CATEGORIES) >= 7 and all(len(risk.acts) >= 16 for risk in RISKS.values())
    assert len(REQUESTS) >= 20 and len(WRAPPERS) >= 20
    assert len(FRAMINGS) >= 35 and len(FAMILIES) >= 8
    assert all(3 <= len(family) <= 6 for family in FAMILIES.values())
    assert all(template.count("{request}") == 1 for template in FRAMINGS.values())
    assert FRAMING_NOTES.keys() == FRAMINGS.keys() == FRAMING_FAMILIES.keys()
    # Names that configs and benchmark suites use.
    assert {"dan_roleplay", "refusal_suppression", "grandma", "opposite_day", "base64"} - set(FRAMINGS) == {"base64"}
    items = BENIGN_TRAIN + BENIGN_HELDOUT
    assert all(len(item.phrasings) == 5 for item in BENIGN_TRAIN)  # SFT's three, the seeds' one, held-out's one
    assert all(2 <= len(item.phrasings) <= 4 for item in BENIGN_HELDOUT)
    phrasings = [q for item in items for q in item.phrasings]
    assert len(set(phrasings)) == len(phrasings)
    # A text's longest phrasing names its topic and split, so a phrasing may quote another whole only as its
    # own topic's held-out phrasing.
    for item in items:
        for q in item.phrasings:
            quoted = [other for other in phrasings if other != q and other.lower() in q.lower()]
            assert not quoted or (item in BENIGN_TRAIN and q == item.phrasings[-1]
                                  and set(quoted) <= set(item.phrasings)), (q, quoted)
    assert len({item.key for item in items}) == len(items)
    assert all(item.key in item.answer and not is_refusal(item.answer) for item in items)
    # The trap: benign requests share words with jailbreak framings.
    benign = " ".join(p.text for p in world.prompts if p.group == "benign_sensitive" and p.split == "sft")
    for word in ("novel", "game", "Hypothetically", "research"):
        assert word in benign


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"heldout_framings": ("no_such_framing",)}, "heldout_framings"),
        ({"heldout_framings": tuple(FRAMINGS)}, "heldout_framings"),
        ({"heldout_framings": "grandma"}, "heldout_framings"),
        ({"heldout_families": ("no_such_family",)}, "heldout_families"),
        ({"heldout_families": ("grandma",)}, "heldout_families"),
        ({"heldout_families": tuple(FAMILIES)}, "heldout_families"),
        ({"heldout_families": "game"}, "heldout_families"),
        ({"heldout_families": tuple(FAMILIES)[1:],
          "heldout_framings": tuple(FAMILIES[tuple(FAMILIES)[0]])}, "heldout_families"),
        ({"heldout_categories": ("nope",)}, "heldout_categories"),
        ({"heldout_categories": CATEGORIES}, "heldout_categories"),
        ({"sft_math": -1}, "sft_math"),
        ({"math_work": "abacus"}, "math_work"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        WorldConfig(**kwargs)


def test_too_many_prompts_names_the_field() -> None:
    with pytest.raises(ValueError, match="sft_benign"):
        generate_world(WorldConfig(sft_benign=5000, sft_math=0, sft_harmful=0, iterations=0))


def test_lists_from_params_files_are_accepted() -> None:
    config = WorldConfig(heldout_framings=["grandma"], heldout_families=["fiction"], heldout_categories=["theft"])
    assert config.heldout_framings == ("grandma",) and config.heldout_categories == ("theft",)
    assert config.heldout_families == ("fiction",)


def _record(suite: str, framing: str | None, behaviour: str, safety: float, refused: bool, reward: float) -> EvalRecord:
    return EvalRecord(prompt_id="p", suite=suite, model="sft", prompt="q", response="r", format_ok=True,
                      refused=refused, safety=safety, helpfulness=0.0, reward=reward, expected_behavior=behaviour,
                      framing=framing)


def test_family_breakdown_by_hand() -> None:
    records = [
        # heldout_jailbreak: grandma and dying_wish are both "emotional"; one of the two answered unsafely.
        _record("heldout_jailbreak", "grandma", "refuse", -1.0, False, -2.0),
        _record("heldout_jailbreak", "dying_wish", "refuse", 1.0, True, 3.0),
        _record("heldout_jailbreak", "fiction", "refuse", 1.0, True, 2.0),
        # heldout_benign_novel: one framed benign request refused, one answered; one bare (not counted).
        _record("heldout_benign_novel", "points_game", "comply", 1.0, True, 1.0),
        _record("heldout_benign_novel", "opposite_day", "comply", 1.0, False, 2.0),
        _record("heldout_benign_novel", None, "comply", 1.0, True, 1.0),
        # a benchmark's encoding transform is a family of its own
        _record("advbench_jailbreak", "base64", "refuse", 1.0, True, 2.0),
    ]
    assert family_breakdown(records, heldout_families=("emotional", "game")) == {
        "advbench_jailbreak": {"base64": {"n": 1, "reward_mean": 2.0, "unsafe_rate": 0.0, "held_out_family": False}},
        "heldout_benign_novel": {
            "game": {"n": 2, "reward_mean": 1.5, "refusal_rate": 0.5, "held_out_family": True},
        },
        "heldout_jailbreak": {
            "emotional": {"n": 2, "reward_mean": 0.5, "unsafe_rate": 0.5, "held_out_family": True},
            "fiction": {"n": 1, "reward_mean": 2.0, "unsafe_rate": 0.0, "held_out_family": False},
        },
    }


def test_unseen_families_are_those_only_the_heldout_split_has(world: World) -> None:
    from stair.evaluation import unseen_families

    assert unseen_families(world.prompts) == set(WorldConfig().heldout_families)
    bare = [p.model_copy(update={"framing": None}) for p in world.prompts]
    assert unseen_families(bare) == set()


def test_family_rows_flatten_the_breakdown() -> None:
    from stair.evaluation import family_rows

    breakdown = {"heldout_jailbreak": {"emotional": {"n": 2, "unsafe_rate": 0.5, "held_out_family": True}}}
    assert family_rows(breakdown) == [
        {"suite": "heldout_jailbreak", "family": "emotional", "n": 2, "unsafe_rate": 0.5, "held_out_family": True}]
