"""Answer checking: whether a final answer states a known ground truth (a number, a choice, LaTeX, or text)."""

import re

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LATEX_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\$|\^\\circ|\^\{\\circ\}|\\%|\s+")


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text) if m.replace(",", "").strip("-")]


def normalize(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def normalize_latex(answer: str) -> str:
    """Light LaTeX normalisation for simple answers: \\boxed{}, \\frac{a}{b} -> (a)/(b), \\text{}, spacing."""
    text = answer.strip()
    boxed = text.rfind("\\boxed{")
    if boxed >= 0:
        depth, start = 0, boxed + len("\\boxed{")
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth < 0:
                text = text[start:i]
                break
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\[dt]?frac\{([^}]*)\}\{([^}]*)\}", r"(\1)/(\2)", text)
    text = re.sub(r"\\[dt]?frac(\d)(\d)", r"(\1)/(\2)", text)
    text = _LATEX_DROP.sub("", text)
    text = re.sub(r"\((-?\w+)\)", r"\1", text)
    return text.rstrip(".").lower()


def _final_expression(answer: str) -> str:
    """What an answer states last: a \\boxed{} expression, the text after 'answer is', or the last line."""
    if "\\boxed{" in answer:
        return answer
    stated = re.search(r"answer is[:\s]*(.+)", answer, re.IGNORECASE)
    return stated.group(1) if stated else answer.strip().splitlines()[-1] if answer.strip() else ""


def check_answer(answer: str, truth: str) -> bool:
    """Verifiable-answer check: numbers (the 'answer is N' number, else the last), choices, or text."""
    truth = truth.strip()
    truth_numbers = _numbers(truth)
    if truth_numbers and normalize(truth).replace(" ", "").lstrip("-").replace(".", "").isdigit():
        stated = re.search(r"answer is[:\s]*\$?(-?\d[\d,]*(?:\.\d+)?)", answer, re.IGNORECASE)
        found = _numbers(stated.group(1)) if stated else _numbers(answer)[-1:]
        return bool(found) and abs(found[0] - truth_numbers[0]) < 1e-6
    if re.fullmatch(r"[A-Ea-e]", truth):
        choice = (re.fullmatch(r"\W*([A-Ea-e])\W*", answer)
                  or re.search(r"answer is[:\s]*\(?([A-E])\b", answer, re.IGNORECASE)
                  or re.search(r"\(([A-Ea-e])\)", answer))
        return bool(choice) and choice.group(1).upper() == truth.upper()
    if "\\" in truth or "{" in truth or "^" in truth:  # a LaTeX answer (MATH): compare normalised forms
        return normalize_latex(_final_expression(answer)) == normalize_latex(truth)
    return f" {normalize(truth)} " in f" {normalize(answer)} "
