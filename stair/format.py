"""The structured chain-of-thought format: titled reasoning steps, then one final output.

    <|Reasoning_step|>Title: Problem Analysis
    ...<|/Reasoning_step|><|Reasoning_step|>Title: ...<|/Reasoning_step|><|Output|>Final Answer:
    ...<|/Output|>

A response is exactly the concatenation of its chunks, so a tree path (prefix + step) renders by string
concatenation and whatever the model writes between chunks stays part of the next chunk, byte for byte.
`render_response` puts `separator` between chunks: "" by default, "\n\n" in the official STAIR-SFT data
(which also has a newline after each opening tag and before each closing one, and "Title: X:" lines;
the parser reads both layouts). Parsing never raises: malformed text is parsed deterministically and the
problems are listed in `ParsedResponse.issues`.
"""

import re
from dataclasses import dataclass, field

STEP_OPEN = "<|Reasoning_step|>"
STEP_CLOSE = "<|/Reasoning_step|>"
OUTPUT_OPEN = "<|Output|>"
OUTPUT_CLOSE = "<|/Output|>"
FORMAT_TOKENS = (STEP_OPEN, STEP_CLOSE, OUTPUT_OPEN, OUTPUT_CLOSE)
ANSWER_HEADER = "Final Answer:"
TITLE_HEADER = "Title:"
# What a step cut at the token limit (no stop token reached) is: `end` the last step of its response,
# judged as it stands; `continue` (the official code) a partial step, evaluated by a rollout and expanded
# further, as only a closed output or an end of turn ends a response.
CUT_STEPS = ("end", "continue")

_TAG = re.compile("|".join(re.escape(t) for t in FORMAT_TOKENS))


def render_step(title: str, body: str) -> str:
    """One reasoning step chunk, tags included."""
    return f"{STEP_OPEN}{TITLE_HEADER} {title}\n{body}{STEP_CLOSE}"


def render_output(answer: str) -> str:
    """The final output chunk, tags included."""
    return f"{OUTPUT_OPEN}{ANSWER_HEADER}\n{answer}{OUTPUT_CLOSE}"


def render_response(steps: list[tuple[str, str]], answer: str, separator: str = "") -> str:
    """A whole structured response from (title, body) steps and the final answer, `separator` between chunks."""
    return separator.join([*(render_step(t, b) for t, b in steps), render_output(answer)])


@dataclass(frozen=True)
class ParsedStep:
    title: str | None
    body: str
    closed: bool


@dataclass(frozen=True)
class ParsedResponse:
    """What was found in a response. `issues` is empty exactly when the text is well formed."""

    steps: list[ParsedStep] = field(default_factory=list)
    output: str | None = None
    output_closed: bool = False
    issues: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Has a closed final output (it may still have other issues)."""
        return self.output is not None and self.output_closed

    @property
    def format_ok(self) -> bool:
        return not self.issues

    @property
    def answer(self) -> str | None:
        """The final answer text without the 'Final Answer:' header, if there is an output."""
        if self.output is None:
            return None
        text = self.output.strip()
        if text.startswith(ANSWER_HEADER):
            text = text[len(ANSWER_HEADER) :]
        return text.strip()


def _split_title(body: str) -> tuple[str | None, str]:
    """(title, rest) of a step body; the official layout's trailing colon ("Title: Problem Analysis:") is
    punctuation, not part of the title."""
    text = body.strip()
    if not text.startswith(TITLE_HEADER):
        return None, text
    first, _, rest = text.partition("\n")
    title = first[len(TITLE_HEADER) :].strip()
    return title.rstrip(" \t:") or title or None, rest.strip()


def parse_response(text: str) -> ParsedResponse:
    """Parse model text into steps and output, flagging every deviation from the format.

    Issue codes: no_steps, empty_step, missing_title, unclosed_step, stray_text, stray_tag,
    missing_output, unclosed_output, step_after_output, text_after_output.
    """
    steps: list[ParsedStep] = []
    issues: list[str] = []
    output: str | None = None
    output_closed = False
    pos = 0
    open_tag: str | None = None  # the tag whose block we are inside
    block_start = 0

    def note(code: str) -> None:
        if code not in issues:
            issues.append(code)

    def close_step(body: str, closed: bool) -> None:
        title, rest = _split_title(body)
        if not body.strip():
            note("empty_step")
        elif title is None:
            note("missing_title")
        steps.append(ParsedStep(title=title, body=rest, closed=closed))

    for match in _TAG.finditer(text):
        tag = match.group()
        between = text[pos : match.start()]
        if open_tag is None:
            if between.strip():
                note("text_after_output" if output_closed else "stray_text")
            if tag == STEP_OPEN:
                if output is not None:
                    note("step_after_output")
                open_tag, block_start = tag, match.end()
            elif tag == OUTPUT_OPEN:
                if output is not None:
                    note("text_after_output")
                open_tag, block_start = tag, match.end()
            else:
                note("stray_tag")
        elif open_tag == STEP_OPEN:
            if tag == STEP_CLOSE:
                close_step(text[block_start : match.start()], closed=True)
                open_tag = None
            else:  # a new block starts before this step closed
                close_step(text[block_start : match.start()], closed=False)
                note("unclosed_step")
                open_tag = None
                if tag in (STEP_OPEN, OUTPUT_OPEN):
                    if tag == STEP_OPEN and output is not None:
                        note("step_after_output")
                    open_tag, block_start = tag, match.end()
                else:
                    note("stray_tag")
        else:  # inside the output
            if tag == OUTPUT_CLOSE:
                if output is None:
                    output, output_closed = text[block_start : match.start()], True
                open_tag = None
            else:
                if output is None:
                    output = text[block_start : match.start()]
                note("unclosed_output")
                open_tag = None
                if tag in (STEP_OPEN, OUTPUT_OPEN):
                    note("step_after_output" if tag == STEP_OPEN else "text_after_output")
                    open_tag, block_start = tag, match.end()
                else:
                    note("stray_tag")
        pos = match.end()

    tail = text[pos:]
    if open_tag == STEP_OPEN:
        close_step(tail, closed=False)
        note("unclosed_step")
    elif open_tag == OUTPUT_OPEN:
        if output is None:
            output = tail
        note("unclosed_output")
    elif tail.strip():
        note("text_after_output" if output_closed else "stray_text")

    if not steps:
        note("no_steps")
    if output is None:
        note("missing_output")
    return ParsedResponse(steps=steps, output=output, output_closed=output_closed, issues=issues)


def split_chunks(text: str) -> list[str]:
    """The text cut after every closing tag: step chunks as the trees hold them ("".join gives the text)."""
    chunks = re.split(f"(?<={re.escape(STEP_CLOSE)})|(?<={re.escape(OUTPUT_CLOSE)})", text)
    return [c for c in chunks if c]


def join_cut_steps(steps: list[str]) -> list[str]:
    """Tree steps with every step cut at the token limit (no closing tag; only `cut_steps="continue"` goes on
    from one) joined to the steps that go on from it, so every step but the last closes exactly where a
    PRM reads its score. Steps that each close, as every inner step under "end" does, come back as they are."""
    joined: list[str] = []
    last_open = False
    for step in steps:
        if last_open:
            joined[-1] += step
        else:
            joined.append(step)
        last_open = STEP_CLOSE not in step and OUTPUT_CLOSE not in step
    return joined


def is_terminal_chunk(chunk: str) -> bool:
    """A generated step chunk ends the response when it closes the final output."""
    return OUTPUT_CLOSE in chunk


def ends_response(chunk: str, stopped: bool, cut_steps: str = "end") -> bool:
    """Whether a generated step chunk ends the response: it closes the output, or it stopped without
    closing a step (at the end of turn: nothing can follow it). A chunk cut at the token limit
    (`stopped` False) ends it under `cut_steps="end"`, and is a partial step under "continue"."""
    if cut_steps not in CUT_STEPS:
        raise ValueError(f"cut_steps={cut_steps!r} is not one of {CUT_STEPS}")
    if is_terminal_chunk(chunk):
        return True
    if not stopped:
        return cut_steps == "end"
    return not chunk.rstrip().endswith(STEP_CLOSE)
