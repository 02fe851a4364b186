"""Model-free stand-ins for tests: a scripted generation backend and a chat tokenizer."""

import random
from collections.abc import Sequence

from stair.format import OUTPUT_CLOSE, STEP_CLOSE, render_output, render_step
from stair.generation import Completion, Sampling


class ChatTokenizer:
    """Whitespace 'tokenizer' with a chat template, enough for prompt rendering and token counts."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        text = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
        return text + ("<|assistant|>\n" if add_generation_prompt else "")


REFUSE_STEP = render_step("Risk Assessment", "This is harmful. I must refuse.")
COMPLY_STEP = render_step("Request Analysis", "No harmful intent, so I should help.")
REFUSAL = render_output("Sorry, I can't help with that. Instead, I can suggest something safe.")
COMPLIANCE = render_output("Here is how to do it.")


class ScriptedBackend:
    """Samples next steps from a fixed menu with its own seeded stream; counts calls and prompts.

    Step mode: a first step (refuse- or comply-flavoured), then an output that follows the last
    step's flavour with probability 0.8. Response mode: the rest of the response from there.
    """

    def __init__(self, seed: int = 0):
        self.tokenizer = ChatTokenizer()
        self.rng = random.Random(seed)
        self.calls: list[tuple[str, int, int]] = []  # (mode, prompts, n)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def sampling_state(self) -> dict:
        return {"rng": self.rng.getstate()}

    def restore_sampling_state(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def _next(self, prefix: str, mode: str) -> str:
        steps = prefix.count(STEP_CLOSE)
        refusing = prefix.rfind(REFUSE_STEP) > prefix.rfind(COMPLY_STEP)
        if steps == 0 or (steps < 2 and self.rng.random() < 0.5):
            chunk = self.rng.choice([REFUSE_STEP, COMPLY_STEP])
        else:
            keep = self.rng.random() < 0.8
            chunk = REFUSAL if refusing == keep else COMPLIANCE
        if mode == "response" and OUTPUT_CLOSE not in chunk:
            return chunk + self._next(prefix + chunk, mode)
        return chunk

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: str) -> list[list[Completion]]:
        self.calls.append((mode, len(prompts), n))
        out = []
        for prompt in prompts:
            samples = []
            for _ in range(n):
                text = self._next(prompt, mode)
                samples.append(Completion(text, len(text.split()), True))
            out.append(samples)
        return out


TINY = dict(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2)


def save_tiny_model(folder, texts: list[str]):
    """An untrained one-layer Llama with a BPE tokenizer trained on `texts`, saved to `folder`."""
    from stair.modeling import TinyModelConfig, init_tiny_model, train_tokenizer

    tokenizer = train_tokenizer(texts * 5, vocab_size=300)
    init_tiny_model(tokenizer, TinyModelConfig(**TINY)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    """A port no one listens on now, so that concurrent test runs do not meet at a server's default."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
