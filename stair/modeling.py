"""Base models: the tiny from-scratch default (BPE tokenizer + small Llama) and real Hugging Face models.

Both end up as a `save_pretrained` folder whose tokenizer knows the structured-CoT format tokens as
single tokens (added, not special: servers decode with special tokens skipped, and the format is the
answer's text) and has a chat template. `chat_prompt` is the one place a request becomes model
input; BOS handling is the chat template's business and nothing else adds one.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stair.format import FORMAT_TOKENS

log = logging.getLogger(__name__)

USER, ASSISTANT, END, PAD = "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"
# The generation prompt ends in a newline that is also the last byte of the tokenized prompt, so the
# tokenized prompt is always a prefix of tokenized prompt + completion (STACK gotcha 8).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "\n{{ message['content'] }}" + END + "\n"
    "{% else %}" + ASSISTANT + "\n{{ message['content'] }}" + END + "\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Size of the from-scratch default model and its tokenizer."""

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_layers: int = 4
    num_heads: int = 4
    max_length: int = 512
    seed: int = 0


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on `texts`, with chat roles as special tokens and format tokens as added ones.

    Digits are split one by one: worked arithmetic then reads and writes single digits, and every sum
    is a one-digit fact rather than a lookup over thousands of merged number tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, END, USER, ASSISTANT, *FORMAT_TOKENS]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Trained as special (whole, never merged, low ids), then marked plain so that decoding keeps them.
    spec = json.loads(tokenizer.to_str())
    for added in spec["added_tokens"]:
        added["special"] = added["special"] and added["content"] not in FORMAT_TOKENS
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=[USER, ASSISTANT],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def init_tiny_model(tokenizer, config: TinyModelConfig):
    """A small Llama-architecture causal LM initialised from config (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(llama)
    # Servers that take a request's temperature (transformers serve) sample only when the model's config does.
    model.generation_config.do_sample = True
    return model


def load_pretrained_base(model_id: str, trust_remote_code: bool = False, revision: str | None = None):
    """A real model and tokenizer, with the format tokens added (and embeddings resized) if missing.

    The tokenizer's EOS becomes the chat template's end-of-turn token where the two differ (Llama-3:
    `<|eot_id|>` rather than `<|end_of_text|>`), so SFT and DPO end answers the way the template ends a
    turn and generation stops there; the model's generation config stops at both.
    """
    from tokenizers import AddedToken
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(
        model_id, trust_remote_code=trust_remote_code, revision=revision, dtype="auto"
    )
    missing = [t for t in FORMAT_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        log.info("adding %d format tokens to the tokenizer: %s", len(missing), missing)
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
        model.resize_token_embeddings(len(tokenizer))
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    turn_end = end_of_turn(tokenizer)
    if turn_end is not None and turn_end != tokenizer.eos_token:
        log.info("EOS set to the chat template's end of turn %s (was %s)", turn_end, tokenizer.eos_token)
        tokenizer.eos_token = turn_end
    stops = model.generation_config.eos_token_id
    stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
    if tokenizer.eos_token_id not in stops:
        model.generation_config.eos_token_id = [*stops, tokenizer.eos_token_id]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def end_of_turn(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message, if it writes one."""
    probe = "stair-end-of-turn-probe"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}], tokenize=False
    )
    after = rendered.rpartition(probe)[2]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    if not ids:
        return None
    added = tokenizer.added_tokens_decoder.get(ids[0])
    return added.content if added is not None and added.special else None


def chat_prompt(tokenizer, request: str) -> str:
    """The model input for a user request: the chat template with the generation prompt."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True
    )


def load_model(path: Path | str, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False):
    """A saved causal LM and its tokenizer, ready for generation (eval mode)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
    ).to(device)
    model.eval()
    return model, tokenizer


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
