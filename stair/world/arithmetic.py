"""Arithmetic word problems whose worked solutions a tiny model can imitate digit by digit.

A problem applies two or three operations, left to right, to a starting number; every value on
the way stays in 1..99. The teacher's solution plans the operations in one step ("Start with 23.
Add 17. Subtract 5."), then works each one in its own step: directly ("23+17=40") or by columns,
ones first, with the carry or borrow written out, so that every token the model has to produce
follows from a few tokens before it (a one-digit sum, product or difference). A template names the
operations and has several phrasings; the last of three or more is kept for the held-out split.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass

from stair.format import render_response

MAX_VALUE = 99

NAMES = (
    "Mia", "Leo", "Ava", "Noah", "Zara", "Omar", "Lena", "Kai", "Ines", "Theo", "Maya", "Ravi", "Sofia",
    "Ben", "Yuki", "Eli", "Nora", "Sam", "Priya", "Jonas", "Aisha", "Tom", "Lucia", "Hugo", "Mei", "Ana",
    "Felix", "Grace", "Ivan", "Chloe", "Diego", "Emma", "Farid", "Hana", "Jack", "Kira", "Luis", "Nadia",
    "Oscar", "Rosa",
)
OBJECTS = (
    "apples", "marbles", "stickers", "books", "pencils", "cookies", "shells", "coins", "cards", "stamps",
    "balloons", "toy cars", "buttons", "beads", "candles", "cupcakes", "eggs", "flowers", "gloves", "keys",
    "leaves", "magnets", "oranges", "paper cranes", "pebbles", "ribbons", "rocks", "socks", "tickets",
    "crayons",
)
_VERB = {"+": "Add", "-": "Subtract", "*": "Multiply by"}
_TITLE = {"+": "Addition", "-": "Subtraction", "*": "Multiplication"}
_OP_NAMES = {"+": "add", "-": "sub", "*": "mul"}


@dataclass(frozen=True)
class MathTemplate:
    """One problem shape: operators applied left to right to slot a, and its phrasings."""

    ops: tuple[tuple[str, str], ...]  # (operator, slot) pairs
    phrasings: tuple[str, ...]  # slots {name} {obj} {a} {b} {c} {d}, numbers in this order
    start: tuple[int, int] = (5, 60)  # range of a

    @property
    def category(self) -> str:
        return "_".join(_OP_NAMES[op] for op, _ in self.ops)


_T = MathTemplate
TEMPLATES: tuple[MathTemplate, ...] = (
    _T((("+", "b"), ("-", "c")), (
        "{name} has {a} {obj}. {name} buys {b} more and then gives {c} to a friend. How many {obj} does "
        "{name} have now?",
        "{name} owns {a} {obj}, gets {b} more as a gift, and then loses {c}. How many {obj} are left?",
        "At first {name} had {a} {obj}. Then {name} found {b} more but gave away {c}. How many {obj} does "
        "{name} have?",
    )),
    _T((("-", "b"), ("+", "c")), (
        "There are {a} {obj} in a box. {name} takes out {b} and later puts {c} back. How many {obj} are in "
        "the box now?",
        "{name} had {a} {obj}, sold {b} of them, and then bought {c} more. How many {obj} does {name} have?",
        "A jar holds {a} {obj}. {name} removes {b}, then adds {c}. How many {obj} are in the jar?",
    )),
    _T((("*", "b"), ("+", "c")), (
        "{name} fills {a} bags with {b} {obj} each and finds {c} more {obj} on the floor. How many {obj} "
        "does {name} have in all?",
        "There are {a} boxes with {b} {obj} in each box, and {c} loose {obj}. How many {obj} are there?",
        "{name} makes {a} piles of {b} {obj} and then gets {c} extra {obj}. How many {obj} in total?",
    ), (2, 12)),
    _T((("*", "b"), ("-", "c")), (
        "A shelf has {a} rows with {b} {obj} in each row. {name} takes away {c} of them. How many {obj} "
        "are still on the shelf?",
        "{name} buys {a} packs of {b} {obj} and gives {c} to a neighbor. How many {obj} does {name} keep?",
        "There are {a} bowls holding {b} {obj} each. {name} eats or uses {c}. How many {obj} remain?",
    ), (2, 12)),
    _T((("+", "b"), ("*", "c")), (
        "{name} buys {a} red boxes and {b} blue boxes. Every box holds {c} {obj}. How many {obj} did "
        "{name} buy?",
        "{name} has {a} small bags and gets {b} more bags. Each bag has {c} {obj}. How many {obj} are in the "
        "bags?",
        "On Monday {name} packs {a} crates and on Tuesday {b} crates, with {c} {obj} in each crate. How "
        "many {obj} are packed?",
    ), (2, 9)),
    _T((("+", "b"), ("+", "c"), ("-", "d")), (
        "{name} collects {a} {obj} on Monday, {b} on Tuesday and {c} on Wednesday, then loses {d}. How many "
        "{obj} does {name} have?",
        "{name} has {a} {obj}, wins {b} more, is given {c} more, and then drops {d}. How many {obj} now?",
    )),
    _T((("*", "b"), ("+", "c"), ("-", "d")), (
        "Each of {a} friends gives {name} {b} {obj}. A teacher adds {c} more, and {name} uses {d}. How many "
        "{obj} are left?",
        "{name} opens {a} packets of {b} {obj}, gets {c} more from a cousin, and spends {d}. How many {obj} "
        "are left?",
    ), (2, 9)),
    _T((("-", "b"), ("*", "c")), (
        "{name} had {a} {obj} and gave {b} away. Each one left is swapped for {c} new {obj}. How many {obj} "
        "does {name} have now?",
        "{name} has {a} tickets and uses {b}. Every ticket left buys {c} {obj}. How many {obj} can {name} "
        "buy?",
    ), (4, 20)),
    _T((("+", "b"), ("-", "c"), ("+", "d")), (
        "A bus has {a} passengers. At the first stop {b} get on and {c} get off. At the next stop {d} more "
        "get on. How many passengers are on the bus now?",
        "A room has {a} {obj}. {name} brings in {b}, takes out {c}, and then brings in {d} more. How many "
        "{obj} are in the room?",
    )),
    _T((("-", "b"), ("-", "c")), (
        "{name} has {a} {obj}. {name} gives {b} to a brother and {c} to a sister. How many {obj} does "
        "{name} keep?",
        "{name} starts with {a} {obj}, loses {b} at school and {c} on the way home. How many {obj} are left?",
        "A basket holds {a} {obj}. {name} takes {b} and a friend takes {c}. How many {obj} stay in the "
        "basket?",
    )),
    _T((("+", "b"), ("+", "c")), (
        "{name} reads {a} pages on Monday, {b} pages on Tuesday and {c} pages on Wednesday. How many pages "
        "does {name} read in total?",
        "{name} has {a} {obj}, then gets {b} from a friend and {c} from a sister. How many {obj} does {name} "
        "have?",
        "A class collects {a} {obj} in one week, {b} the next week and {c} the week after. How many {obj} "
        "in total?",
    )),
    _T((("*", "b"), ("+", "c")), (
        "A baker makes {a} trays of {b} muffins and then bakes {c} extra muffins. How many muffins are "
        "there in total?",
    ), (2, 12)),
)
del _T
# The last phrasing of every template with three or more is never used by a training split.
HELDOUT_PHRASING = -1


def _apply(value: int, op: str, x: int) -> int:
    return value + x if op == "+" else value - x if op == "-" else value * x


def draw_operand(rng: random.Random, value: int, op: str) -> int | None:
    """The operand of `value op ?` that keeps the result in 1..MAX_VALUE (at most 40 added or taken, a
    one-digit factor), or None if there is none."""
    if op == "+":
        return rng.randint(1, min(40, MAX_VALUE - value)) if value < MAX_VALUE else None
    if op == "-":
        return rng.randint(1, min(40, value - 1)) if value >= 2 else None
    return rng.randint(2, min(9, MAX_VALUE // value)) if MAX_VALUE // value >= 2 else None


def sample_numbers(rng: random.Random, template: MathTemplate) -> dict[str, int] | None:
    """Operands keeping every value on the way in 1..MAX_VALUE, or None to redraw."""
    value = rng.randint(*template.start)
    numbers = {"a": value}
    for op, slot in template.ops:
        x = draw_operand(rng, value, op)
        if x is None:
            return None
        numbers[slot] = x
        value = _apply(value, op, x)
    return numbers


def answer(template: MathTemplate, numbers: dict[str, int]) -> int:
    value = numbers["a"]
    for op, slot in template.ops:
        value = _apply(value, op, numbers[slot])
    return value


def _digits(n: int, width: int) -> list[int]:
    """The digits of n, ones first, padded with zeros to `width`."""
    return [(n // 10**i) % 10 for i in range(width)]


def column_work(x: int, op: str, y: int) -> str:
    """x op y worked by columns, ones first: one short line per column, then the result.

    A column line always has three terms, the last being the carry (or borrow) from the column before,
    which is the tens digit of that line's result (a borrow shows as the 1 put before the top digit):
    `9+9+0=18` then `0+1+1=2`; `13-7-0=6` then `1-0-1=0`.
    """
    result = _apply(x, op, y)
    width = max(len(str(x)), len(str(result)))
    lines, carry = [f"{x}{op}{y}:"], 0
    if op == "*":
        for digit in _digits(x, width):
            total = digit * y + carry
            lines.append(f"{digit}*{y}+{carry}={total}")
            carry = total // 10
    elif op == "+":
        for a, b in zip(_digits(x, width), _digits(y, width)):
            total = a + b + carry
            lines.append(f"{a}+{b}+{carry}={total}")
            carry = total // 10
    else:
        for a, b in zip(_digits(x, width), _digits(y, width)):
            borrow = int(a - b - carry < 0)
            lines.append(f"{'1' if borrow else ''}{a}-{b}-{carry}={a + 10 * borrow - b - carry}")
            carry = borrow
    lines.append(f"{x}{op}{y}={result}")
    return "\n".join(lines)


def direct_work(x: int, op: str, y: int) -> str:
    """x op y in one line."""
    return f"{x}{op}{y}={_apply(x, op, y)}"


# How an operation's step is written: `direct` is short (cheap to train and decode, but each result is
# recalled whole); `columns` makes every token a one-digit fact, which a from-scratch tiny model learns
# only with several times the default's SFT budget.
WORK: dict[str, Callable[[int, str, int], str]] = {"direct": direct_work, "columns": column_work}


def solution(template: MathTemplate, numbers: dict[str, int], work: str = "direct", separator: str = "") -> str:
    """The teacher's structured response: the plan, one step per operation written by `work`, the answer
    (`separator` between chunks)."""
    plan = [f"Start with {numbers['a']}."] + [f"{_VERB[op]} {numbers[slot]}." for op, slot in template.ops]
    steps = [("Problem Analysis", " ".join(plan))]
    value = numbers["a"]
    for op, slot in template.ops:
        steps.append((_TITLE[op], WORK[work](value, op, numbers[slot])))
        value = _apply(value, op, numbers[slot])
    return render_response(steps, f"The answer is {value}.", separator)


@dataclass(frozen=True)
class MathProblem:
    text: str
    answer: int
    category: str
    key: tuple  # (category, numbers): one problem, whatever its wording
    template: MathTemplate
    numbers: dict[str, int]  # slot -> operand, as written into the text


def draw_problem(rng: random.Random, template: MathTemplate, heldout: bool) -> MathProblem | None:
    """One problem of `template`; training splits never use a held-out phrasing, the held-out split uses all."""
    numbers = sample_numbers(rng, template)
    if numbers is None:
        return None
    phrasings = template.phrasings
    if len(phrasings) >= 3 and not heldout:
        phrasings = phrasings[:HELDOUT_PHRASING]
    text = rng.choice(phrasings).format(name=rng.choice(NAMES), obj=rng.choice(OBJECTS), **numbers)
    return MathProblem(text=text, answer=answer(template, numbers), category=template.category,
                       key=(template.category, tuple(numbers.values())), template=template, numbers=numbers)
