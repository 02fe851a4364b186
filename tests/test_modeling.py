"""The default tokenizer and tiny model: what servers and the world's arithmetic rely on."""

from stair.format import FORMAT_TOKENS, render_output, render_step
from stair.modeling import END, USER, TinyModelConfig, chat_prompt, init_tiny_model, train_tokenizer

ANSWER = render_step("Column Addition", "47+38:\n7+8+0=15") + render_output("The answer is 85.")


def tokenizer():
    return train_tokenizer([ANSWER, "What is 47+38?"] * 5, vocab_size=300)


def test_format_tokens_are_whole_tokens_that_survive_decoding_without_special_tokens() -> None:
    tok = tokenizer()
    assert all(len(tok(t, add_special_tokens=False)["input_ids"]) == 1 for t in FORMAT_TOKENS)
    ids = tok(chat_prompt(tok, "What is 47+38?") + ANSWER + END, add_special_tokens=False)["input_ids"]
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded.endswith(ANSWER) and END not in decoded and USER not in decoded
    assert set(tok.all_special_tokens).isdisjoint(FORMAT_TOKENS)


def test_digits_are_single_tokens() -> None:
    tok = tokenizer()
    assert tok.convert_ids_to_tokens(tok("47+38=85", add_special_tokens=False)["input_ids"]) == list("47+38=85")


def test_the_tiny_model_samples_when_a_server_asks_for_a_temperature() -> None:
    assert init_tiny_model(tokenizer(), TinyModelConfig(hidden_size=16, intermediate_size=32, num_layers=1,
                                                        num_heads=2)).generation_config.do_sample
