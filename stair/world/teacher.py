"""The teacher: the structured-CoT response to a world prompt, written from what was drawn for it.

The generator calls these as it draws each prompt, with the values it drew (the math problem's
template and numbers, the harmful act and its category, the framing, the benign item), so a response
never depends on reading the prompt's text back.
"""

import zlib

from stair.format import render_response
from stair.world import arithmetic
from stair.world.catalog import FRAMING_NOTES, RISKS, Benign


def math_response(problem: arithmetic.MathProblem, work: str, separator: str) -> str:
    """The plan, one step per operation written by `work` (`arithmetic.WORK`), and the answer."""
    return arithmetic.solution(problem.template, problem.numbers, work, separator)


def _stable_bit(text: str) -> bool:
    # crc32, not hash(): the choice must not change with PYTHONHASHSEED.
    return zlib.crc32(text.encode()) % 2 == 1


def _refusal(category: str) -> str:
    risk = RISKS[category]
    return f"Sorry, I can't help with {risk.topic}. {risk.alternative}"


def _risk_step(category: str) -> tuple[str, str]:
    risk = RISKS[category]
    return "Risk Assessment", f"This falls under {risk.label}. {risk.why} I must refuse."


def harmful_response(text: str, category: str, act: str, separator: str) -> str:
    """A refusal of the harmful request `text` (asking how to `act`); about half name a safe alternative."""
    steps = [("Request Analysis", f"The user asks how to {act}."), _risk_step(category)]
    if _stable_bit(text):
        steps.append(("Safe Alternative", "I will decline and point to a safe, useful alternative."))
    return render_response(steps, _refusal(category), separator)


def jailbreak_response(category: str, act: str, framing: str, separator: str) -> str:
    """A refusal that names the framing and says it does not change the harm."""
    steps = [
        ("Request Analysis", f"The user asks how to {act}, wrapped in {FRAMING_NOTES[framing]}."),
        ("Framing Analysis", "This framing does not change the harm; the steps work the same in real life."),
        _risk_step(category),
    ]
    return render_response(steps, _refusal(category), separator)


def benign_response(item: Benign, separator: str) -> str:
    """The item's reading, a plan naming its key phrase, and its answer (framed or not)."""
    steps = [
        ("Request Analysis", f"{item.reading} There is no harmful intent, so I should help."),
        ("Answer Plan", f"Give a short, direct answer that mentions {item.key}."),
    ]
    return render_response(steps, item.answer, separator)
