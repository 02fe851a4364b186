"""Judges: safety S and helpfulness H in [-1, 1] for a batch of (prompt, response), each with a reason.

- `rules`: rule judges (refusal detection, the official 'sorry' rule, ground-truth helpfulness);
- `answers`: whether an answer states the ground truth (numbers, choices, LaTeX, text);
- `models`: model judges and their rubrics, the batch `Judge`, and building one from `JudgeParams`;
- `strongreject`: the StrongREJECT rubric and its parse.

Judges are chosen by name (`rules.SAFETY_JUDGES` / `rules.HELPFULNESS_JUDGES`, or a model judge's rubric)
and always take a whole batch. The names below are the ones the rest of the code uses.
"""

from stair.judges.answers import check_answer, normalize_latex
from stair.judges.models import Judge, JudgeParams, Scored, build_judge, describe_judge, make_judge
from stair.judges.rules import Verdict, is_refusal

__all__ = ["Judge", "JudgeParams", "Scored", "Verdict", "build_judge", "check_answer", "describe_judge",
           "is_refusal", "make_judge", "normalize_latex"]
