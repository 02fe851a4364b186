"""A stand-in for a real chat model, built offline: Llama-3 conventions on a few-thousand-parameter network.

The real path (a Hugging Face model id or folder) differs from the tiny default in what the tokenizer
and chat template do, not in the network: a BOS token the template writes, header tokens, a system
block, an end-of-turn token (`<|eot_id|>`) distinct from EOS (`<|end_of_text|>`), no pad token, and
no STAIR format tokens in the vocabulary. This folder has all of that, so the pipeline exercises
template, BOS/EOS, format-token and length handling exactly as Llama-3.1-8B-Instruct would.
"""

from pathlib import Path

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"

# Llama 3.1's template, shortened (no tools): BOS, a system block with dates, headers per turn, content
# trimmed, <|eot_id|> after every turn.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def build_llama3_standin(folder: Path, texts: list[str], vocab_size: int = 600, hidden_size: int = 32,
                         seed: int = 0) -> Path:
    """A randomly initialised Llama with a BPE tokenizer trained on `texts`, saved like a Hub checkpoint."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = [BOS, EOS, HEADER_START, HEADER_END, EOT]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    # As Llama-3's tokenizer does: add_special_tokens=True puts a BOS in front (a second one after the template's).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS,
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = LLAMA3_TEMPLATE
    torch.manual_seed(seed)
    ids = {token: fast.convert_tokens_to_ids(token) for token in specials}
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=ids[BOS], eos_token_id=ids[EOS], rope_theta=500000.0,
    ))
    # As Llama-3.1-Instruct ships it: generation stops at either end of text or end of turn.
    model.generation_config = GenerationConfig(bos_token_id=ids[BOS], eos_token_id=[ids[EOS], ids[EOT]])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
