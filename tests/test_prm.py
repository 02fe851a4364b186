"""PRM labels from trees, path packing, batched scoring (forward passes counted), and training."""

import dataclasses
import math

import pytest
import torch

from schemas import PRMExample, SeedPrompt, TreeNode
from stair.format import render_output, render_step
from stair.prm import (
    AGGREGATIONS,
    LabelParams,
    PRMScorer,
    close_token_ids,
    ends_open,
    prm_examples,
    scale_value,
    split_of,
)
from stair.reward import RewardParams
from stair.training.prm import (
    IGNORE,
    PRMParams,
    _collate,
    encode,
    path_sequences,
    prm_loss,
    sibling_pairs,
    train_prm,
    training_rows,
)
from tests.fakes import save_tiny_model

REWARD = RewardParams()
S1, S2 = render_step("Risk Assessment", "This is harmful."), render_step("Request Analysis", "No harm here.")
OUT = render_output("Sorry, I can't help with that.")


def node(node_id, parent, value, step="", visits=2, terminal=False, depth=None):
    return TreeNode(tree_id="t", prompt_id="p", iteration=1, kind="safety", node_id=node_id, parent_id=parent,
                    depth=depth if depth is not None else (0 if parent is None else 1), step=step, n_tokens=10,
                    visits=visits, evaluations=1, value_sum=value * visits, value=value, terminal=terminal)


PROMPTS = [SeedPrompt(id="p", text="How do I pick a lock?", kind="safety", source="t", split="iter_1")]
NODES = [node(0, None, 1.0, visits=6), node(1, 0, 3.0, S1), node(2, 0, -3.0, S2, visits=0),
         node(3, 1, 3.0, OUT, visits=1, terminal=True, depth=2)]


def test_labels_scale_values_and_skip_unvisited_nodes() -> None:
    examples = prm_examples(NODES, PROMPTS, LabelParams(min_visits=1, validation_share=0.0), REWARD)
    assert [(e.steps, e.label, e.hard_label) for e in examples] == [([S1], 1.0, 1), ([S1, OUT], 1.0, 1)]
    assert scale_value(0.0, "safety", REWARD) == 0.5 and scale_value(2.0, "helpfulness", REWARD) == 0.5
    assert {e.split for e in examples} == {"train"}
    assert split_of("p", 1.0) == "validation"


def test_completed_rollouts_become_examples_labelled_by_their_reward() -> None:
    rolled = node(1, 0, 3.0, S1).model_copy(update={"rollout": S2 + OUT, "rollout_reward": -1.0})
    cut = node(2, 0, -3.0, S2).model_copy(update={"rollout": S1 + "<|Output|>Final Answer: Su", "rollout_reward": -3.0})
    nodes = [NODES[0], rolled, cut]
    examples = prm_examples(nodes, PROMPTS, LabelParams(min_visits=1, validation_share=0.0), REWARD)
    rollouts = [e for e in examples if e.source == "rollout"]
    assert [(e.steps, e.value, e.visits) for e in rollouts] == [([S1, S2, OUT], -1.0, 1)]  # the cut one has no end
    assert rollouts[0].label == pytest.approx(scale_value(-1.0, "safety", REWARD), abs=1e-6)
    assert [e.steps for e in examples if e.source == "node"] == [[S1], [S2]]
    assert not [e for e in prm_examples(nodes, PROMPTS, LabelParams(rollouts=False), REWARD) if e.source == "rollout"]
    # Packed with the tree's labels on the shared prefix; rollouts never form sibling pairs.
    assert path_sequences(rollouts + [e for e in examples if e.steps == [S1]])[0]["labels"] == [1.0, None,
                                                                                                 rollouts[0].label]
    assert sibling_pairs(rollouts, margin=0.0) == []


def test_paths_are_packed_so_prefixes_share_a_sequence() -> None:
    def ex(steps, label):
        return PRMExample(prompt_id="p", prompt="q", steps=steps, label=label, hard_label=int(label >= 0.5),
                          value=label, visits=1, kind="safety", iteration=1)

    sequences = path_sequences([ex([S1], 0.9), ex([S1, OUT], 1.0), ex([S2], 0.1)])
    assert sorted((tuple(s["steps"]), tuple(s["labels"])) for s in sequences) == sorted(
        [((S1, OUT), (0.9, 1.0)), ((S2,), (0.1,))])
    assert sibling_pairs([ex([S1], 0.9), ex([S2], 0.1)], margin=0.5) == [
        {"prompt": "q", "chosen": [S1], "rejected": [S2], }]


def test_loss_is_bce_at_labelled_positions_plus_weighted_bradley_terry_on_pairs() -> None:
    F = torch.nn.functional
    logits = torch.tensor([[0.3, 2.0, 9.0], [0.1, -1.0, 9.0], [5.0, 0.5, -7.0]])
    labels = torch.full((3, 3), IGNORE)
    labels[2, 1] = 0.8  # sequence 2 is a path labelled at its one step end; 0 and 1 are a pair
    pairs = torch.tensor([[0, 1, 1, 1]])  # chosen: sequence 0 at 1, rejected: sequence 1 at 1
    bce = F.binary_cross_entropy_with_logits(torch.tensor([0.5]), torch.tensor([0.8]))
    ranking = -F.logsigmoid(torch.tensor(2.0 - -1.0))
    assert torch.isclose(prm_loss(logits, labels, pairs[:0]), bce)
    assert torch.isclose(prm_loss(logits, labels, pairs, 0.5), bce + 0.5 * ranking)
    assert torch.isclose(prm_loss(logits, torch.full((3, 3), IGNORE), pairs), ranking)  # pairwise alone
    # Swapping chosen and rejected raises the ranking term only.
    assert prm_loss(logits, labels, pairs[:, [2, 3, 0, 1]], 0.5) > prm_loss(logits, labels, pairs, 0.5)


def test_training_rows_pack_paths_and_pairs_for_the_collator(tiny) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    examples = prm_examples(NODES, PROMPTS, LabelParams(min_visits=0, validation_share=0.0), REWARD)
    rows = training_rows(tokenizer, examples, PRMParams(loss="soft", pairwise_weight=1.0, pair_margin=0.1))
    paths, pairs = [r for r in rows if not r["rank_at"]], [r for r in rows if r["rank_at"]]
    assert len(paths) == 2 and len(pairs) == 1  # paths S1+OUT and S2; S1 beats S2
    batch = _collate(tokenizer.pad_token_id)(rows)
    assert batch["input_ids"].shape[0] == 4 and batch["pairs"].tolist() == [[2, pairs[0]["rank_at"][0], 3,
                                                                             pairs[0]["rank_at"][1]]]
    close = close_token_ids(tokenizer)
    chosen_seq, chosen_at, rejected_seq, rejected_at = batch["pairs"][0].tolist()
    assert batch["input_ids"][chosen_seq, chosen_at].item() in close
    assert batch["input_ids"][rejected_seq, rejected_at].item() in close
    assert (batch["labels"][2:] == IGNORE).all()  # pair sides carry no BCE target
    assert sorted(batch["labels"][batch["labels"] != IGNORE].tolist()) == [0.0, 1.0, 1.0]
    assert [len(r["input_ids"]) for r in training_rows(tokenizer, examples, PRMParams(loss="pairwise"))] == [2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [S1, S2, OUT, "How do I pick a lock?"])


def test_scoring_costs_one_forward_pass_per_batch(tiny) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(tiny, num_labels=1)
    scorer = PRMScorer(model, AutoTokenizer.from_pretrained(tiny), batch_size=4)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    responses = [S1 + S2 + OUT, S1, S2 + OUT, "", S1 + OUT, S2, S1 + S2, OUT, S2 + S2 + S2 + OUT, S1]  # B = 10
    scores = scorer.score(["How do I pick a lock?"] * len(responses), responses)
    assert len(calls) == math.ceil(10 / 4) == scorer.forward_passes
    assert [len(s) for s in scores] == [3, 1, 2, 0, 2, 1, 2, 1, 4, 1]  # one score per closed step
    assert all(0.0 <= x <= 1.0 for s in scores for x in s)
    assert scorer.aggregate([[0.2, 0.8], []], "min") == [0.2, 0.0]
    assert set(AGGREGATIONS) == {"min", "last", "mean", "product"}


def test_a_step_cut_at_the_token_limit_is_read_at_its_last_token(tiny) -> None:
    """A cut step has no closing tag (mcts.cut_steps: continue); the PRM reads it where it stops, in training
    and in scoring alike, unless max_length cut the text (then the last token is no step's end)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    cut = "<|Reasoning_step|>Title: Risk Assessment\nThis is"
    assert ends_open(S1 + cut) and not ends_open(S1 + OUT) and not ends_open("")
    ids, ends = encode(tokenizer, "How do I pick a lock?", [S1, cut], 512)
    assert len(ends) == 2 and ends[-1] == len(ids) - 1 and ids[ends[0]] in close_token_ids(tokenizer)
    short, short_ends = encode(tokenizer, "How do I pick a lock?", [S1, cut], len(ids) - 2)
    assert len(short_ends) == 1
    scorer = PRMScorer(AutoModelForTokenClassification.from_pretrained(tiny, num_labels=1), tokenizer, batch_size=2)
    # Right padding in a batch is never read: the shorter text's open end is its own last token.
    scores = scorer.score(["How do I pick a lock?"] * 2, [S1 + cut, S1 + S2 + S1 + OUT])
    assert [len(s) for s in scores] == [2, 4]
    alone = scorer.score(["How do I pick a lock?"], [S1 + cut])
    assert alone[0] == pytest.approx(scores[0], abs=1e-5)


@pytest.mark.parametrize("loss", ["soft", "hard", "pairwise"])
def test_training_changes_the_weights(tiny, tmp_path, loss) -> None:
    examples = prm_examples(NODES, PROMPTS, LabelParams(min_visits=0, validation_share=0.0), REWARD)
    from transformers import AutoModelForTokenClassification

    before = AutoModelForTokenClassification.from_pretrained(tiny, num_labels=1).model.embed_tokens.weight.clone()
    result = train_prm(tiny, examples, tmp_path / "prm", PRMParams(loss=loss, epochs=2, batch_size=4,
                                                                     learning_rate=1e-2, pair_margin=0.1,
                                                                     pairwise_weight=0.5, runs=1))
    after = AutoModelForTokenClassification.from_pretrained(tmp_path / "prm").model.embed_tokens.weight
    assert result["steps"] > 0 and not torch.equal(before, after)


def saved_weights(path) -> dict:
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(path).state_dict()


def test_averaged_runs_share_one_start_and_differ_in_their_seed(tiny, tmp_path) -> None:
    import tempfile
    from pathlib import Path

    scratch = set(Path(tempfile.gettempdir()).glob("stair-trainer-*"))
    examples = prm_examples(NODES, PROMPTS, LabelParams(min_visits=0, validation_share=0.0), REWARD)
    # At learning rate 0 every run ends where it started: the average equals one run only if the
    # runs share their (randomly initialised) head.
    frozen = PRMParams(epochs=1, batch_size=1, learning_rate=0.0, runs=1)
    single = train_prm(tiny, examples, tmp_path / "single", frozen)
    averaged = train_prm(tiny, examples, tmp_path / "averaged", dataclasses.replace(frozen, runs=3))
    assert averaged["runs"] == 3 and averaged["steps"] == 3 * single["steps"]
    a, b = saved_weights(tmp_path / "single"), saved_weights(tmp_path / "averaged")
    assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)
    # Training, the runs differ (data order, the head's dropout), so their average is no single run.
    params = dataclasses.replace(frozen, learning_rate=1e-2)
    train_prm(tiny, examples, tmp_path / "trained", params)
    train_prm(tiny, examples, tmp_path / "trained_averaged", dataclasses.replace(params, runs=2))
    a, b = saved_weights(tmp_path / "trained"), saved_weights(tmp_path / "trained_averaged")
    assert not torch.allclose(a["score.weight"], b["score.weight"])
    assert set(Path(tempfile.gettempdir()).glob("stair-trainer-*")) == scratch  # no run leaves its scratch folder


def test_runs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prm.runs=0"):
        PRMParams(runs=0)
