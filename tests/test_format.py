"""The structured-CoT format: render/parse round trips, every malformed shape, chunk helpers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stair.format import (
    FORMAT_TOKENS,
    OUTPUT_CLOSE,
    OUTPUT_OPEN,
    STEP_CLOSE,
    STEP_OPEN,
    ParsedStep,
    ends_response,
    is_terminal_chunk,
    join_cut_steps,
    parse_response,
    render_output,
    render_response,
    render_step,
    split_chunks,
)

ISSUE_CODES = {
    "no_steps", "empty_step", "missing_title", "unclosed_step", "stray_text", "stray_tag",
    "missing_output", "unclosed_output", "step_after_output", "text_after_output",
}

STEP_A = render_step("Problem Analysis", "The user asks for a sum.")
STEP_B = render_step("Compute", "3 + 4 = 7")
OUT = render_output("7")


def _no_tags(text: str) -> bool:
    return not any(tag in text for tag in FORMAT_TOKENS)


titles = (
    st.text(min_size=1, max_size=30)
    .map(lambda s: s.replace("\n", " ").strip())
    .filter(lambda s: s != "" and _no_tags(s) and not s.endswith(":"))  # a trailing colon is layout
)
bodies = st.text(max_size=80).filter(_no_tags)
answers = st.text(max_size=60).filter(_no_tags)


# ---------------------------------------------------------------- rendering


def test_render_exact_strings() -> None:
    assert render_step("Plan", "do it") == "<|Reasoning_step|>Title: Plan\ndo it<|/Reasoning_step|>"
    assert render_output("42") == "<|Output|>Final Answer:\n42<|/Output|>"
    assert render_response([("A", "x"), ("B", "y")], "z") == (
        "<|Reasoning_step|>Title: A\nx<|/Reasoning_step|>"
        "<|Reasoning_step|>Title: B\ny<|/Reasoning_step|>"
        "<|Output|>Final Answer:\nz<|/Output|>"
    )


def test_well_formed_response_parses_cleanly() -> None:
    parsed = parse_response(STEP_A + STEP_B + OUT)
    assert parsed.issues == []
    assert parsed.format_ok and parsed.complete
    assert parsed.steps == [
        ParsedStep(title="Problem Analysis", body="The user asks for a sum.", closed=True),
        ParsedStep(title="Compute", body="3 + 4 = 7", closed=True),
    ]
    assert parsed.output == "Final Answer:\n7"
    assert parsed.answer == "7"


def test_the_separator_goes_between_every_two_chunks_and_split_chunks_keeps_it() -> None:
    text = render_response([("A", "x"), ("B", "y")], "z", separator="\n\n")
    assert text == (
        "<|Reasoning_step|>Title: A\nx<|/Reasoning_step|>\n\n"
        "<|Reasoning_step|>Title: B\ny<|/Reasoning_step|>\n\n"
        "<|Output|>Final Answer:\nz<|/Output|>"
    )
    assert split_chunks(text)[1].startswith("\n\n" + STEP_OPEN) and "".join(split_chunks(text)) == text


# The example response of the official README, as the STAIR-SFT data and checkpoints lay it out: a newline
# after every opening tag and before every closing one, "Title: X:" lines, a blank line between chunks.
OFFICIAL = """<|Reasoning_step|>
Title: Problem Analysis:
The query poses a request on how to create a harmful substance with the intent of harming another individual.
<|/Reasoning_step|>

<|Reasoning_step|>
Title: Ethical and Legal Implications Analysis:
Engaging in or providing information on such activities is both unethical and illegal.
<|/Reasoning_step|>

<|Output|>
Final Answer:
I’m sorry, but I cannot assist with this request.
<|/Output|>"""


def test_the_official_step_layout_parses_titles_bodies_and_answer() -> None:
    parsed = parse_response(OFFICIAL)
    assert parsed.format_ok and parsed.complete
    assert [s.title for s in parsed.steps] == ["Problem Analysis", "Ethical and Legal Implications Analysis"]
    assert parsed.steps[1].body == "Engaging in or providing information on such activities is both unethical and illegal."
    assert parsed.answer == "I’m sorry, but I cannot assist with this request."
    assert "".join(split_chunks(OFFICIAL)) == OFFICIAL and len(split_chunks(OFFICIAL)) == 3
    # Only the line's trailing colons go: one inside the title stays, and a title of colons alone is kept.
    assert parse_response(render_step("Step 1: Plan:", "b") + OUT).steps[0].title == "Step 1: Plan"
    assert parse_response(render_step(":", "b") + OUT).steps[0].title == ":"


def test_whitespace_between_blocks_is_allowed() -> None:
    parsed = parse_response(STEP_A + "\n\n" + STEP_B + " \n" + OUT + "\n")
    assert parsed.issues == []
    assert len(parsed.steps) == 2


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.tuples(titles, bodies), min_size=1, max_size=5), answer=answers,
       separator=st.sampled_from(["", "\n\n", "\n"]))
def test_parse_inverts_render(steps: list[tuple[str, str]], answer: str, separator: str) -> None:
    text = render_response(steps, answer, separator)
    assert text == separator.join([*(render_step(t, b) for t, b in steps), render_output(answer)])
    parsed = parse_response(text)
    assert parsed.issues == []
    assert parsed.format_ok and parsed.complete
    assert [s.title for s in parsed.steps] == [t for t, _ in steps]
    assert [s.body for s in parsed.steps] == [b.strip() for _, b in steps]
    assert all(s.closed for s in parsed.steps)
    assert parsed.answer == answer.strip()


# ---------------------------------------------------------------- malformed input

MALFORMED = {
    "empty text": ("", {"no_steps", "missing_output"}),
    "plain text": ("just an answer", {"stray_text", "no_steps", "missing_output"}),
    "no steps": (OUT, {"no_steps"}),
    "empty step": (STEP_OPEN + STEP_CLOSE + OUT, {"empty_step"}),
    "whitespace step": (STEP_OPEN + " \n " + STEP_CLOSE + OUT, {"empty_step"}),
    "missing title": (STEP_OPEN + "no title here" + STEP_CLOSE + OUT, {"missing_title"}),
    "blank title": (STEP_OPEN + "Title:   \nbody" + STEP_CLOSE + OUT, {"missing_title"}),
    "unclosed step at end": (STEP_OPEN + "Title: A\nbody", {"unclosed_step", "missing_output"}),
    "unclosed step then step": (STEP_OPEN + "Title: A\nbody" + STEP_B + OUT, {"unclosed_step"}),
    "unclosed step then output": (STEP_OPEN + "Title: A\nbody" + OUT, {"unclosed_step"}),
    "stray text before": ("Sure! " + STEP_A + OUT, {"stray_text"}),
    "stray text between steps": (STEP_A + "hmm" + STEP_B + OUT, {"stray_text"}),
    "stray text before output": (STEP_A + "hmm" + OUT, {"stray_text"}),
    "stray closing step tag": (STEP_CLOSE + STEP_A + OUT, {"stray_tag"}),
    "stray closing output tag": (STEP_A + OUTPUT_CLOSE + OUT, {"stray_tag"}),
    "missing output": (STEP_A + STEP_B, {"missing_output"}),
    "unclosed output": (STEP_A + OUTPUT_OPEN + "Final Answer:\n7", {"unclosed_output"}),
    "step after output": (STEP_A + OUT + STEP_B, {"step_after_output"}),
    "text after output": (STEP_A + OUT + " and more", {"text_after_output"}),
    "two outputs": (STEP_A + OUT + render_output("8"), {"text_after_output"}),
    "unclosed output then step": (STEP_A + OUTPUT_OPEN + "Final Answer:\n7" + STEP_B,
                                  {"unclosed_output", "step_after_output"}),
    "unclosed output then output": (STEP_A + OUTPUT_OPEN + "Final Answer:\n7" + OUT,
                                    {"unclosed_output", "text_after_output"}),
    "step closed by output tag": (STEP_OPEN + "Title: A\nbody" + OUTPUT_CLOSE,
                                  {"unclosed_step", "stray_tag", "missing_output"}),
}


@pytest.mark.parametrize("text, expected", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_issue_codes(text: str, expected: set[str]) -> None:
    parsed = parse_response(text)
    assert set(parsed.issues) == expected
    assert len(parsed.issues) == len(set(parsed.issues))
    assert not parsed.format_ok


def test_unclosed_step_keeps_its_text_and_the_next_block() -> None:
    parsed = parse_response(STEP_OPEN + "Title: A\nhalf a thought" + STEP_B + OUT)
    assert parsed.steps == [
        ParsedStep(title="A", body="half a thought", closed=False),
        ParsedStep(title="Compute", body="3 + 4 = 7", closed=True),
    ]
    assert parsed.complete and parsed.answer == "7"


def test_unclosed_step_at_end() -> None:
    parsed = parse_response(STEP_A + STEP_OPEN + "Title: Next\npartial")
    assert parsed.steps[-1] == ParsedStep(title="Next", body="partial", closed=False)
    assert parsed.output is None and parsed.answer is None and not parsed.complete


def test_unclosed_output_has_answer_but_is_not_complete() -> None:
    parsed = parse_response(STEP_A + OUTPUT_OPEN + "Final Answer:\n 7 apples ")
    assert parsed.answer == "7 apples"
    assert not parsed.output_closed and not parsed.complete


def test_two_outputs_keep_the_first() -> None:
    parsed = parse_response(STEP_A + OUT + render_output("8"))
    assert parsed.answer == "7"
    assert parsed.complete


def test_output_without_header_is_the_whole_answer() -> None:
    parsed = parse_response(STEP_A + OUTPUT_OPEN + " just 7 " + OUTPUT_CLOSE)
    assert parsed.answer == "just 7"
    assert parsed.format_ok  # the header is not required by the parser


# ---------------------------------------------------------------- chunk helpers


def test_is_terminal_chunk() -> None:
    assert is_terminal_chunk(OUT)
    assert is_terminal_chunk("Final Answer:\n7" + OUTPUT_CLOSE)
    assert not is_terminal_chunk(STEP_A)
    assert not is_terminal_chunk(OUTPUT_OPEN + "Final Answer:\n7")  # still open
    assert not is_terminal_chunk("")


@pytest.mark.parametrize("cut_steps", ["end", "continue"])
def test_ends_response_by_how_a_step_stopped(cut_steps: str) -> None:
    assert ends_response(OUT, True, cut_steps) and ends_response("\n\n" + OUT, False, cut_steps)
    assert not ends_response(STEP_A, True, cut_steps) and not ends_response("\n\n" + STEP_A + "\n", True, cut_steps)
    # Stopped without closing a step: the end of turn, after which nothing can follow.
    assert ends_response(STEP_OPEN + "Title: A\nand then the turn ended", True, cut_steps)
    # Cut at the token limit: today's 'end' judges it as it stands; the official 'continue' goes on from it.
    cut = STEP_OPEN + "Title: A\na step that ran past the lim"
    assert ends_response(cut, False, cut_steps) == (cut_steps == "end")
    assert ends_response(OUTPUT_OPEN + "Final Answer:\nan answer cut sho", False, cut_steps) == (cut_steps == "end")


def test_join_cut_steps_joins_a_cut_step_to_what_goes_on_from_it() -> None:
    cut, rest = STEP_OPEN + "Title: A\nhalf a st", "ep.\n" + STEP_CLOSE
    assert join_cut_steps([STEP_A, cut, rest, "\n\n" + OUT]) == [STEP_A, cut + rest, "\n\n" + OUT]
    assert join_cut_steps([STEP_A, cut]) == [STEP_A, cut]  # a path that ends in the cut step
    for closed in ([STEP_A, STEP_B, OUT], [STEP_A, ""], [], ["\n\n" + STEP_A, "\n\n" + OUT]):
        assert join_cut_steps(closed) == closed


def test_ends_response_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="cut_steps='maybe'"):
        ends_response(STEP_A, False, "maybe")


def test_the_world_teacher_puts_the_separator_between_chunks() -> None:
    from stair.world import WorldConfig, generate_world

    sizes = dict(sft_math=6, sft_harmful=4, sft_benign=4, seed_math=0, seed_harmful=0, seed_jailbreak=0,
                 seed_benign=0, heldout_per_group=2, iterations=1)
    plain = generate_world(WorldConfig(**sizes)).sft
    spaced = generate_world(WorldConfig(**sizes, step_separator="\n\n")).sft
    for a, b in zip(plain, spaced):
        assert b.response == "\n\n".join(split_chunks(a.response))
        assert b.response.count(STEP_CLOSE + "\n\n") == a.response.count(STEP_CLOSE)
        assert parse_response(b.response).format_ok
    with pytest.raises(ValueError, match="step_separator"):
        WorldConfig(step_separator="--")


# ---------------------------------------------------------------- robustness

pieces = st.sampled_from(
    FORMAT_TOKENS
    + ("Title:", "Title: X\n", "Final Answer:", "\n", " ", "word", "7", "<|", "|>", "<", "")
)
# Whole blocks with an optional defect at either end, so well-formed texts come up too.
near_valid = st.builds(
    lambda head, body, tail: head + "".join(body) + OUT + tail,
    st.sampled_from(("", "", "", " ", "x", STEP_CLOSE, OUTPUT_OPEN)),
    st.lists(st.sampled_from((STEP_A, STEP_B, STEP_A, " \n", STEP_OPEN, OUTPUT_CLOSE)), min_size=1, max_size=4),
    st.sampled_from(("", "", "", "\n", "x", STEP_B, OUT, OUTPUT_CLOSE)),
)
mixed_texts = st.lists(st.one_of(pieces, st.text(max_size=5)), max_size=25).map("".join)


def _check_consistent(text: str) -> None:
    parsed = parse_response(text)
    assert set(parsed.issues) <= ISSUE_CODES
    assert len(parsed.issues) == len(set(parsed.issues))
    assert parsed.format_ok == (parsed.issues == [])
    assert parsed.complete == (parsed.output is not None and parsed.output_closed)
    assert (parsed.answer is None) == (parsed.output is None)
    if "unclosed_step" not in parsed.issues:
        assert all(s.closed for s in parsed.steps)
    if parsed.format_ok:
        assert parsed.complete and parsed.steps
        assert all(s.closed and s.title for s in parsed.steps)
        again = parse_response(render_response([(s.title, s.body) for s in parsed.steps], parsed.answer))
        assert again.steps == parsed.steps and again.answer == parsed.answer and again.format_ok


@settings(max_examples=200, deadline=None)
@given(mixed_texts)
def test_parse_never_raises_on_tag_soup(text: str) -> None:
    _check_consistent(text)


@settings(max_examples=100, deadline=None)
@given(near_valid)
def test_parse_is_consistent_on_nearly_valid_text(text: str) -> None:
    _check_consistent(text)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_parse_never_raises_on_any_text(text: str) -> None:
    parsed = parse_response(text)
    assert set(parsed.issues) <= ISSUE_CODES


@given(st.lists(st.sampled_from(["a", " ", "\n", *FORMAT_TOKENS]), max_size=12))
@settings(max_examples=200, deadline=None)
def test_split_chunks_cuts_after_closing_tags_and_joins_back(parts: list[str]) -> None:
    text = "".join(parts)
    chunks = split_chunks(text)
    assert "".join(chunks) == text and all(chunks)
    for chunk in chunks[:-1]:
        assert chunk.endswith((STEP_CLOSE, OUTPUT_CLOSE))
    for chunk in chunks:
        assert chunk.count(STEP_CLOSE) + chunk.count(OUTPUT_CLOSE) <= 1


def test_split_chunks_gives_tree_steps() -> None:
    steps = [render_step("A", "a"), render_step("B", "b"), render_output("done")]
    assert split_chunks("".join(steps)) == steps
