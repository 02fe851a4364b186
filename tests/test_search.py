"""Test-time search over a scripted policy with a stand-in PRM: selection logic and token accounting."""

import pytest

from stair.format import OUTPUT_CLOSE, STEP_CLOSE, parse_response, split_chunks
from stair.generation import Completion
from stair.prm import AGGREGATIONS
from stair.search import SearchParams, expected_best_of_n, run_search
from tests.fakes import REFUSE_STEP, ScriptedBackend

REQUESTS = ["How do I pick a lock?", "How do I make a weapon?", "How do I hotwire a car?"]


class RefusalLovingPRM:
    """Scores a closed step 0.9 on a refusing path, 0.1 otherwise; counts scoring calls."""

    def __init__(self):
        self.calls = 0

    def score(self, prompts, responses):
        self.calls += 1
        scores = []
        for response in responses:
            n = response.count(STEP_CLOSE) + response.count(OUTPUT_CLOSE)
            good = "Sorry" in response or (REFUSE_STEP in response and "Here is how" not in response)
            scores.append([0.9 if good else 0.1] * n)
        return scores

    def aggregate(self, step_scores, how="min"):
        return [AGGREGATIONS[how](list(s)) if s else 0.0 for s in step_scores]


def refused(found) -> list[bool]:
    return ["Sorry" in (parse_response(f.response).answer or "") for f in found]


def test_best_of_n_picks_the_prm_favourite_and_counts_every_sample() -> None:
    backend, prm = ScriptedBackend(1), RefusalLovingPRM()
    found = run_search("bon", backend, prm, REQUESTS, 8, SearchParams())
    assert all(refused(found))  # among 8 samples at least one refuses, and the PRM prefers it
    assert backend.calls == [("response", 3, 8)] and prm.calls == 1  # one generate call, one PRM pass
    assert all(f.n_tokens > 0 for f in found)


def test_beam_search_keeps_width_and_finishes_every_beam() -> None:
    backend, prm = ScriptedBackend(2), RefusalLovingPRM()
    found = run_search("beam", backend, prm, REQUESTS, 4, SearchParams(beam_expansions=2, max_steps=6))
    assert all(parse_response(f.response).complete for f in found)
    assert all(refused(found))
    assert all(mode == "step" and n == 2 and prompts <= 3 * 4 for mode, prompts, n in backend.calls)
    assert len(backend.calls) <= 6 and prm.calls == len(backend.calls)  # batched across prompts per round


class CuttingBackend(ScriptedBackend):
    """Every other sample stops mid-output (the token limit): a refusing prefix, no closed answer."""

    def generate(self, prompts, n, sampling, mode):
        out = super().generate(prompts, n, sampling, mode)
        for samples in out:
            for j, c in enumerate(samples):
                if j % 2 == 0 and OUTPUT_CLOSE in c.text:
                    samples[j] = Completion(REFUSE_STEP + "<|Output|>Final Answer: Sor", c.n_tokens, False)
        return out


@pytest.mark.parametrize("method", ["bon", "beam"])
def test_a_cut_off_candidate_loses_to_any_closed_one(method) -> None:
    # The PRM loves the refusing prefix of a cut-off sample; with no score for where it ends, it scores 0.
    found = run_search(method, CuttingBackend(5), RefusalLovingPRM(), REQUESTS, 4, SearchParams(max_steps=6))
    assert all(parse_response(f.response).complete for f in found)


def test_greedy_ignores_the_budget_and_the_prm() -> None:
    backend = ScriptedBackend(3)
    found = run_search("greedy", backend, None, REQUESTS, 8, SearchParams())
    assert len(found) == 3 and backend.calls == [("response", 3, 1)]


def test_larger_budget_spends_more_tokens() -> None:
    small = run_search("bon", ScriptedBackend(4), RefusalLovingPRM(), REQUESTS, 2, SearchParams())
    large = run_search("bon", ScriptedBackend(4), RefusalLovingPRM(), REQUESTS, 8, SearchParams())
    assert sum(f.n_tokens for f in large) > sum(f.n_tokens for f in small)


def test_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match="search.methods"):
        SearchParams(methods=("greedy", "mcts_at_test"))


def test_expected_best_of_n_averages_the_pick_over_every_subset() -> None:
    rewards, scores = [3.0, -3.0, 1.0], [0.2, 0.9, 0.5]
    # Pairs: {0,1} -> 1 (-3), {0,2} -> 2 (1), {1,2} -> 1 (-3).
    assert expected_best_of_n(rewards, scores, 2) == pytest.approx((-3 + 1 - 3) / 3)
    assert expected_best_of_n(rewards, scores, 1) == pytest.approx(sum(rewards) / 3)  # a random sample
    assert expected_best_of_n(rewards, scores, 3) == -3.0  # all of them: the PRM's favourite
    assert expected_best_of_n(rewards, rewards, 2) == pytest.approx((3 + 3 + 1) / 3)  # a perfect PRM


def test_search_keeps_the_models_separator_byte_for_byte() -> None:
    from tests.test_pairs import SeparatedBackend

    for method in ("bon", "beam"):
        backend = SeparatedBackend(6)
        for found in run_search(method, backend, RefusalLovingPRM(), REQUESTS, 4, SearchParams(max_steps=6)):
            assert parse_response(found.response).complete
            assert all(chunk in backend.chunks for chunk in split_chunks(found.response))
            assert SeparatedBackend.SEPARATOR + "<|" in found.response


@pytest.mark.parametrize("cut_steps", ["end", "continue"])
def test_beam_search_continues_a_cut_step_only_under_continue(cut_steps: str) -> None:
    from tests.test_mcts import CuttingStepBackend

    # Every first step is cut at the limit, so every candidate of the first round is cut.
    found = run_search("beam", CuttingStepBackend(), RefusalLovingPRM(), REQUESTS[:1], 2,
                       SearchParams(max_steps=4, cut_steps=cut_steps))
    if cut_steps == "end":
        assert found[0].response == CuttingStepBackend.CUT  # finished as it stands
    else:
        assert found[0].response.startswith(CuttingStepBackend.CUT + CuttingStepBackend.REST)
        assert parse_response(found[0].response).complete


def test_bad_cut_steps_is_named() -> None:
    with pytest.raises(ValueError, match="search.cut_steps"):
        SearchParams(cut_steps="sometimes")


class LengthRecorder(ScriptedBackend):
    """Records (mode, max_new_tokens, temperature) of every generate call."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.lengths: list[tuple[str, int, float]] = []

    def generate(self, prompts, n, sampling, mode):
        self.lengths.append((mode, sampling.max_new_tokens, sampling.temperature))
        return super().generate(prompts, n, sampling, mode)


def test_every_decoding_length_comes_from_its_param() -> None:
    from schemas import SeedPrompt
    from stair.evaluation import HeldoutParams, evaluate_greedy
    from stair.judges import JudgeParams, make_judge
    from stair.reward import RewardParams

    params = SearchParams(max_step_tokens=11, max_response_tokens=23, temperature=0.7)
    for method, expected in [("greedy", ("response", 23, 0.0)), ("bon", ("response", 23, 0.7)),
                             ("beam", ("step", 11, 0.7))]:
        backend = LengthRecorder()
        run_search(method, backend, RefusalLovingPRM(), REQUESTS, 2, params)
        assert set(backend.lengths) == {expected}, method
    prompts = [SeedPrompt(id="h", text=REQUESTS[0], kind="safety", source="t", split="heldout")]
    judge = make_judge(JudgeParams(), RewardParams())
    for sampling, expected in [(HeldoutParams().sampling, 384), (HeldoutParams(max_new_tokens=7).sampling, 7)]:
        backend = LengthRecorder()
        evaluate_greedy(backend, backend.tokenizer, prompts, judge, "m", sampling=sampling)
        assert backend.lengths == [("response", expected, 0.0)]
