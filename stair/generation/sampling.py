"""What a request asks of a backend and gets back, and how a sample's tokens are drawn.

`Sampling` holds the decoding settings and `Completion` one sample; `request_seed` and `sample_tokens`
give every sample its own random stream, so a sample never depends on the batch it runs in.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from stair.format import OUTPUT_CLOSE, STEP_CLOSE

Mode = Literal["step", "response"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class Completion:
    text: str = field(repr=False)
    n_tokens: int
    stopped: bool  # ended at a stop token/string (False: cut at max_new_tokens)



def stop_strings(mode: Mode) -> list[str]:
    return [STEP_CLOSE, OUTPUT_CLOSE] if mode == "step" else [OUTPUT_CLOSE]


def request_seed(seed: int, key: str, sample: int) -> int:
    """The seed of one sample of one request: a stable hash of the backend's seed, the request's key and the
    sample's index, so that a sample never depends on what else is generated with it."""
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_tokens(logits, sampling: Sampling, uniforms: Sequence[float]) -> list[int]:
    """One token per row of `logits` ([rows, vocab]): argmax when greedy, else temperature, top-k, top-p (in
    `generate`'s order) and the inverse CDF at the row's own uniform draw, so each row's token depends only
    on its logits and its draw."""
    import torch

    if sampling.greedy:
        return logits.argmax(-1).tolist()
    vocab = logits.shape[-1]
    k = sampling.top_k if 0 < sampling.top_k < vocab else vocab
    top, index = (logits / sampling.temperature).topk(k, dim=-1)  # sorted, most likely first
    probs = top.softmax(-1)
    if sampling.top_p < 1.0:  # keep the most likely tokens until their mass reaches top_p (at least one)
        probs = probs * ((probs.cumsum(-1) - probs) < sampling.top_p)
    cdf = probs.cumsum(-1)
    draws = torch.tensor(uniforms, dtype=cdf.dtype, device=cdf.device).unsqueeze(-1) * cdf[:, -1:]
    last_kept = (probs > 0).sum(-1, keepdim=True) - 1
    choice = torch.minimum((cdf <= draws).sum(-1, keepdim=True), last_kept)
    return index.gather(-1, choice).squeeze(-1).tolist()
