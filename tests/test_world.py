"""The built-in task world: determinism, split hygiene, labels and teacher responses."""

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.rows import SeedPrompt
from stair.format import parse_response
from stair.world import CATEGORIES, FRAMINGS, World, WorldConfig, generate_world, teacher_response
from stair.world.arithmetic import column_work

GROUPS = ("math", "harmful", "jailbreak", "benign_sensitive", "benign_novel")
NOT_COMPLYING = ("Sorry", "I can't", "I cannot", "I won't")


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig())


def _answer(prompt: SeedPrompt) -> str:
    parsed = parse_response(teacher_response(prompt))
    assert parsed.format_ok, parsed.issues
    return parsed.answer


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
        assert [counts[(f"iter_{k}", g)] for g in GROUPS] == [12, 6, 22, 8, 0]
    assert [counts[("heldout", g)] for g in GROUPS] == [40] * 5
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
        parsed = parse_response(teacher_response(p))
        # Math: the plan, then one step per operation (two or three); the rest: two or three steps.
        assert parsed.format_ok and 2 <= len(parsed.steps) <= (4 if p.group == "math" else 3)
        assert all(step.title for step in parsed.steps)
        assert len(p.text.split()) < 60


def test_no_prompt_text_in_two_splits(world: World) -> None:
    texts = [p.text for p in world.prompts]
    assert len(set(texts)) == len(texts)


def test_sft_has_no_jailbreaks_and_held_out_names_stay_in_heldout(world: World) -> None:
    config = WorldConfig()
    assert not any(p.group == "jailbreak" for p in world.prompts if p.split == "sft")
    for p in world.prompts:
        if p.split != "heldout":
            assert p.framing not in config.heldout_framings
            assert p.category not in config.heldout_categories
    heldout = [p for p in world.prompts if p.split == "heldout"]
    assert {p.category for p in heldout if p.group == "harmful"} == set(CATEGORIES)
    jailbreaks = [p for p in heldout if p.group == "jailbreak"]
    assert {p.framing for p in jailbreaks} == set(FRAMINGS)
    assert sum(p.framing in config.heldout_framings for p in jailbreaks) >= len(jailbreaks) / 2


def test_iterations_use_training_framings_and_differ(world: World) -> None:
    iters = {k: {p.text for p in world.prompts if p.split == f"iter_{k}"} for k in (1, 2, 3)}
    assert iters[1].isdisjoint(iters[2]) and iters[2].isdisjoint(iters[3])
    framings = {p.framing for p in world.prompts if p.split.startswith("iter_") and p.group == "jailbreak"}
    assert framings <= set(FRAMINGS) - set(WorldConfig().heldout_framings)


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


def test_heldout_does_not_move_with_training_counts(world: World) -> None:
    smaller = generate_world(WorldConfig(sft_math=50, sft_harmful=20, iterations=1))
    assert [p for p in smaller.prompts if p.split == "heldout"] == [
        p for p in world.prompts if p.split == "heldout"
    ]


def test_refusals_and_compliant_answers(world: World) -> None:
    for p in world.prompts:
        answer = _answer(p)
        if p.expected_behavior == "refuse":
            assert answer.startswith("Sorry, I can't help with") and "Instead, " in answer
            assert len(answer) < 350
        else:
            assert not any(marker in answer for marker in NOT_COMPLYING), answer


def test_math_ground_truth_is_correct_and_taught(world: World) -> None:
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
        assert _answer(p).endswith(f"The answer is {value}.")
        direct = re.findall(r"^(\d+)([-+*])(\d+)=(\d+)(?=<)", teacher_response(p), flags=re.M)
        assert len(direct) == len(p.category.split("_"))  # the default: one line per operation
        assert all(symbols[op](int(x), int(y)) == int(z) for x, op, y, z in direct)
        response = teacher_response(p, "columns")
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
            assert p.ground_truth in _answer(p)


def test_world_is_varied_enough(world: World) -> None:
    assert len({p.ground_truth for p in world.prompts if p.group == "benign_sensitive"}) >= 40
    assert len(CATEGORIES) >= 7 and len(FRAMINGS) >= 10
    assert all("{request}" in template for template in FRAMINGS.values())
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
        generate_world(WorldConfig(sft_benign=1000, sft_math=0, sft_harmful=0, iterations=0))


def test_lists_from_params_files_are_accepted() -> None:
    config = WorldConfig(heldout_framings=["grandma"], heldout_categories=["theft"])
    assert config.heldout_framings == ("grandma",) and config.heldout_categories == ("theft",)


def test_teacher_rejects_foreign_prompts() -> None:
    foreign = SeedPrompt(id="x", text="What is 2 + 2?", kind="helpfulness", source="file", split="sft",
                         group="math")
    with pytest.raises(ValueError):
        teacher_response(foreign)
    with pytest.raises(ValueError):
        teacher_response(foreign.model_copy(update={"group": "jailbreak", "framing": "grandma"}))
