"""Generation backends behind one interface: prompts in, n samples per prompt out.

`mode="step"` stops each sample at the end of a reasoning step or of the output (SI-MCTS expansion);
`mode="response"` runs on to the end of the final output (rollouts, evaluation). Backends are chosen
by name from `BACKENDS`; `vllm` and `openai` import their clients lazily.
"""

import functools
import hashlib
import json
import logging
import random
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol

from stair.format import OUTPUT_CLOSE, STEP_CLOSE

log = logging.getLogger(__name__)

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


class Backend(Protocol):
    tokenizer: object

    def generate(
        self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode
    ) -> list[list[Completion]]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def sampling_state(backend: Backend) -> dict | None:
    """What a backend's next samples depend on besides its inputs (JSON-ready), if it can say; for resuming."""
    get = getattr(backend, "sampling_state", None)
    return get() if get is not None else None


def restore_sampling_state(backend: Backend, state: dict | None) -> None:
    if state is not None:
        backend.restore_sampling_state(state)


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


class PrefixCache:
    """KV caches of prompts run before (one row each, [heads, tokens, head_dim] per layer and K/V), least
    recently used dropped past `max_bytes`. `longest` finds the longest prefix a new prompt shares with any of
    them (at most all but its last token, whose logits the prompt's pass must give)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.entries: OrderedDict[tuple[int, ...], list] = OrderedDict()
        self.by_prefix: dict[tuple[int, int], tuple[int, ...]] = {}  # (length, hash of the first tokens) -> entry
        self.shape: list | None = None  # a stored entry's K/V per layer, for blank rows of the right shape

    @staticmethod
    def _hashes(ids: Sequence[int]) -> list[int]:
        value, out = 0, []
        for token in ids:
            value = (value * 1_000_003 + token + 1) % (1 << 61)
            out.append(value)
        return out

    def longest(self, ids: list[int]) -> list | None:
        """Per layer (keys, values) of the longest cached prefix of `ids` but its last token, or None."""
        hashes = self._hashes(ids[:-1])
        for length in range(len(hashes), 0, -1):
            entry = self.by_prefix.get((length, hashes[length - 1]))
            if entry in self.entries and list(entry[:length]) == ids[:length]:
                self.entries.move_to_end(entry)
                return [(k[:, :length], v[:, :length]) for k, v in self.entries[entry]]
        return None

    def add(self, ids: list[int], kv: list) -> None:
        key = tuple(ids)
        if key in self.entries or not self.max_bytes:
            return
        size = sum(k.numel() * k.element_size() * 2 for k, _ in kv)
        self.entries[key], self.bytes, self.shape = kv, self.bytes + size, kv
        for length, value in enumerate(self._hashes(ids), start=1):
            self.by_prefix[(length, value)] = key
        while self.bytes > self.max_bytes and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.bytes -= sum(k.numel() * k.element_size() * 2 for k, _ in dropped)
        if len(self.by_prefix) > 4 * sum(len(e) for e in self.entries) + 1024:  # forget dropped entries' hashes
            self.by_prefix = {k: e for k, e in self.by_prefix.items() if e in self.entries}

    def blank(self, layer: int, part: int, length: int):
        """Zeros shaped like one row's cached keys (part 0) or values (part 1) of `layer`, `length` long."""
        like = self.shape[layer][part]
        return like.new_zeros(like.shape[0], length, like.shape[2])

    def clear(self) -> None:
        self.entries.clear()
        self.by_prefix.clear()
        self.bytes = 0


@functools.cache
def _appending_layer():
    """A DynamicLayer that writes each step's keys and values into spare columns where DynamicLayer
    concatenates (a copy of the whole cache every step: most of a small model's step)."""
    from transformers.cache_utils import DynamicLayer

    class AppendingLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:  # the prompt pass: nothing to append to
                return super().update(key_states, value_states, *args, **kwargs)
            length, adding = self.keys.shape[2], key_states.shape[2]
            # The keys are a view of the start of the buffer unless the caller replaced them: then, or when
            # the room is used up, they move to a new buffer with room to grow.
            if not _has_room(self) or length + adding > self.buffer[0].shape[2]:
                room = length + adding + max(64, length // 2)
                buffer = tuple(t.new_empty(t.shape[0], t.shape[1], room, t.shape[3]) for t in (self.keys, self.values))
                buffer[0][:, :, :length], buffer[1][:, :, :length] = self.keys, self.values
                self.buffer = buffer
            buffer = self.buffer
            buffer[0][:, :, length:length + adding] = key_states
            buffer[1][:, :, length:length + adding] = value_states
            self.keys, self.values = buffer[0][:, :, :length + adding], buffer[1][:, :, :length + adding]
            return self.keys, self.values

    return AppendingLayer


def _appending_cache(config):
    """A DynamicCache for `config` whose layers append in place. Batches move rows and columns of every
    layer alike, so only full-attention layers (no sliding window, no recurrent state) will do."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    other = sorted({type(layer).__name__ for layer in cache.layers if type(layer) is not DynamicLayer})
    if other:
        raise ValueError(f"backend.name=transformers decodes full-attention models only; {config.model_type} has "
                         f"{', '.join(other)} layers (use backend.name=vllm)")
    cache.layers = [_appending_layer()() for _ in cache.layers]
    return cache


@dataclass
class _Row:
    """One sample being decoded: which request and sample it is, its random stream and its tokens so far."""

    request: int
    sample: int
    rng: random.Random
    position: int  # the position id of its next token
    tokens: list[int] = field(default_factory=list)


class TransformersBackend:
    """Continuous batching over a transformers model's KV cache, on CPU or GPU.

    Up to `batch_size` samples decode together; a sample that reaches a stop token or its token limit frees
    its slot for a waiting one (`_Batch`), so steps go to unfinished samples, not to padding. The n samples
    of a prompt share one pass over the prompt (its KV cache is computed once and copied to n rows), and a
    prompt that starts with one run before (an expansion's prompt, for the rollouts of its new steps) runs
    from that prompt's cached KV (`PrefixCache`, up to `prefix_cache_bytes`). Each sample draws from its
    own random stream, seeded from the backend's seed and the request's key (given by the caller, else the
    call count and the prompt's place in the call), so its tokens do not depend on the batch it runs in (up
    to floating-point rounding, which can differ with the batch's shape; on one machine the same calls give
    the same samples). Device-agnostic: the same loop runs on CUDA in bf16 (sampling in float32), untested
    here for want of a GPU.
    """

    keyed = True  # generate takes per-prompt `keys` that seed each request's samples

    def __init__(self, model, tokenizer, batch_size: int = 256, seed: int = 0, prefix_cache_bytes: int = 1 << 30):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size  # samples decoded together
        self.seed = seed
        self.prefixes = PrefixCache(prefix_cache_bytes)
        self.calls = 0
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:  # a model as the Hub ships it (Llama-3) has none; left padding is masked
            tokenizer.pad_token = tokenizer.eos_token
        # Ends of text: the tokenizer's EOS and every id the model's generation config stops at (Llama-3:
        # <|end_of_text|> and <|eot_id|>); their text is dropped from completions.
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        configured = [] if configured is None else [configured] if isinstance(configured, int) else configured
        ends = {tokenizer.eos_token_id, *configured} - {None}
        # A model without the format tokens (an external judge) maps them to None or <unk>: it stops at its end.
        step, output = (tokenizer.convert_tokens_to_ids(t) for t in (STEP_CLOSE, OUTPUT_CLOSE))
        unknown = {None, getattr(tokenizer, "unk_token_id", None)}
        self._stop_ids = {
            "step": frozenset({step, output, *ends} - unknown),
            "response": frozenset({output, *ends} - unknown),
        }
        self._strip = sorted({t for t in (tokenizer.pad_token, *tokenizer.convert_ids_to_tokens(sorted(ends))) if t})

    @classmethod
    def from_path(cls, path, device: str = "cpu", dtype: str = "float32", batch_size: int = 256,
                  seed: int = 0, trust_remote_code: bool = False,
                  prefix_cache_bytes: int = 1 << 30) -> "TransformersBackend":
        from stair.modeling import load_model

        model, tokenizer = load_model(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, batch_size=batch_size, seed=seed, prefix_cache_bytes=prefix_cache_bytes)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def sampling_state(self) -> dict:
        return {"calls": self.calls}  # calls without keys are keyed by the call count

    def restore_sampling_state(self, state: dict) -> None:
        self.calls = state["calls"]

    def _decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        for token in self._strip:
            text = text.replace(token, "")
        return text

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode,
                 keys: Sequence[str] | None = None) -> list[list[Completion]]:
        """n samples per prompt; `keys` (one per prompt, unique within the caller's run) seed them.

        The prompts' KV caches are kept for later prompts that start with them until `forget_prefixes()`,
        or the next call without keys (whose requests are keyed by the call count)."""
        if not prompts:
            return []
        if keys is None:
            self.calls += 1
            keys = [f"call {self.calls}:{i}" for i in range(len(prompts))]
            self.forget_prefixes()  # a caller that resumes between such calls must find the same (empty) cache
        elif len(keys) != len(prompts):
            raise ValueError(f"{len(keys)} keys for {len(prompts)} prompts")
        copies = 1 if sampling.greedy else n
        prompt_ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        samples = self._run(prompt_ids, copies, keys, sampling, self._stop_ids[mode])
        results = []
        for per_prompt in samples:
            completions = [Completion(self._decode(ids), len(ids), stopped) for ids, stopped in per_prompt]
            results.append(completions * n if sampling.greedy else completions)
        return results

    def _forward(self, input_ids, mask, positions, cache):
        """Last-position logits (float32) of one forward pass that appends `input_ids` to `cache`."""
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()

    def forget_prefixes(self) -> None:
        """Empty the prefix cache (a caller that resumes from here will start with an empty one too)."""
        self.prefixes.clear()

    def _prefill(self, prompt_ids: list[list[int]], counts: list[int]):
        """Run prompts once each, from the longest cached prefix of each; returns their cache, mask and last
        logits, each prompt's row repeated `counts[i]` times (its samples share the one pass)."""
        import torch
        import torch.nn.functional as F

        device = self.model.device
        found = [self.prefixes.longest(ids) for ids in prompt_ids]
        cached = [0 if kv is None else kv[0][0].shape[1] for kv in found]
        past, width = max(cached), max(len(ids) - c for ids, c in zip(prompt_ids, cached))
        # Each row: its cached prefix right-aligned in the first `past` columns, then its other tokens
        # right-aligned in the last `width` (a row with a shorter prefix has a masked gap between the two).
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids) + c) + ids[c:] for ids, c in zip(prompt_ids, cached)],
                                 device=device)
        mask = torch.tensor([[0] * (past - c) + [1] * c + [0] * (width - len(ids) + c) + [1] * (len(ids) - c)
                             for ids, c in zip(prompt_ids, cached)], device=device)
        cache = _appending_cache(self.model.config)
        if past:
            for index, layer in enumerate(cache.layers):
                keys, values = ([F.pad(kv[index][part], (0, 0, past - c, 0)) if kv else
                                 self.prefixes.blank(index, part, past) for kv, c in zip(found, cached)]
                                for part in (0, 1))
                layer.update(torch.stack(keys), torch.stack(values))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        logits = self._forward(input_ids, mask, positions, cache)
        for row, ids in enumerate(prompt_ids):
            columns = mask[row].nonzero().squeeze(-1)
            self.prefixes.add(ids, [(layer.keys[row].index_select(1, columns), layer.values[row].index_select(1, columns))
                                    for layer in cache.layers])
        rows = torch.tensor([i for i, count in enumerate(counts) for _ in range(count)], device=device)
        if len(rows) != len(prompt_ids):
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.index_select(0, rows), layer.values.index_select(0, rows)
        return cache, mask.index_select(0, rows), logits.index_select(0, rows)

    def _run(self, prompt_ids: list[list[int]], copies: int, keys: Sequence[str], sampling: Sampling,
             stop_ids: frozenset) -> list[list[tuple[list[int], bool]]]:
        """Decode `copies` samples of every prompt; returns (token ids, stopped) per sample, in order."""
        import torch

        device = self.model.device
        results: list[list[tuple[list[int], bool] | None]] = [[None] * copies for _ in prompt_ids]
        # Waiting samples as (prompt, sample) pairs, prompts of like length together so a prefill pads little.
        waiting = [(i, j) for i in sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
                   for j in range(copies)][::-1]
        batch = _Batch()
        with torch.no_grad():
            while batch.live or waiting:
                # Waiting samples take the free slots, a few at a time (a prefill pass costs more for few rows).
                free = self.batch_size - batch.live
                if waiting and free >= min(len(waiting), max(1, self.batch_size // 8)):
                    joining = sorted(waiting.pop() for _ in range(min(free, len(waiting))))
                    prompts = sorted({i for i, _ in joining})
                    batch.place(*self._prefill([prompt_ids[i] for i in prompts],
                                               [sum(i == p for i, _ in joining) for p in prompts]),
                                [_Row(i, j, random.Random(request_seed(self.seed, keys[i], j)), len(prompt_ids[i]))
                                 for i, j in joining])
                slots = [slot for slot, row in enumerate(batch.rows) if row is not None]
                logits = batch.logits.index_select(0, torch.tensor(slots, device=device))
                tokens = sample_tokens(logits, sampling, [batch.rows[slot].rng.random() for slot in slots])
                finished = []
                for slot, token in zip(slots, tokens):
                    row = batch.rows[slot]
                    row.tokens.append(token)
                    if token in stop_ids or len(row.tokens) >= sampling.max_new_tokens:
                        results[row.request][row.sample] = (row.tokens, token in stop_ids)
                        finished.append(slot)
                batch.finish(finished)
                if not batch.live:
                    batch = _Batch()
                    continue
                batch.tidy(refill=bool(waiting))
                pad = self.tokenizer.pad_token_id
                step = [[row.tokens[-1] if row else pad] for row in batch.rows]
                positions = torch.tensor([[row.position if row else 0] for row in batch.rows], device=device)
                for row in batch.rows:
                    if row:
                        row.position += 1
                batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.rows), 1)], dim=1)
                batch.logits = self._forward(torch.tensor(step, device=device), batch.mask, positions, batch.cache)
        return results


class _Batch:
    """The samples decoding together, one slot (a row of the KV cache, mask and logits) each.

    Every row's last token sits in the last column (prompts are left-padded). A finished sample's slot
    decodes a dummy token, masked, until a waiting sample takes it over or a quarter of the slots are free
    with nothing waiting: moving rows copies the whole cache, which costs more than a step of a small model.
    """

    def __init__(self):
        self.cache = self.mask = self.logits = None
        self.rows: list[_Row | None] = []

    @property
    def live(self) -> int:
        return sum(row is not None for row in self.rows)

    def place(self, cache, mask, logits, rows: list[_Row]) -> None:
        """Put prefilled samples (their cache, mask and next-token logits) into free slots, adding slots if
        too few are free and columns if their prompts are longer than the batch."""
        import torch
        import torch.nn.functional as F

        if self.cache is None:
            self.cache, self.mask, self.logits, self.rows = cache, mask, logits, list(rows)
            return
        free = [slot for slot, row in enumerate(self.rows) if row is None][: len(rows)]
        width, slots = mask.shape[1], len(self.rows)
        self.reshape(slots=slots + len(rows) - len(free), width=max(width, self.mask.shape[1]))
        free += list(range(slots, slots + len(rows) - len(free)))
        index = torch.tensor(free, device=self.mask.device)
        columns = self.mask.shape[1]
        for layer, new in zip(self.cache.layers, cache.layers):
            for held, added in ((layer.keys, new.keys), (layer.values, new.values)):
                held[index, :, : columns - width] = 0
                held[index, :, columns - width:] = added
        self.mask[index] = F.pad(mask, (columns - width, 0))
        self.logits[index] = logits
        for slot, row in zip(free, rows):
            self.rows[slot] = row

    def finish(self, slots: list[int]) -> None:
        for slot in slots:
            self.rows[slot] = None
        if slots:
            self.mask[slots] = 0

    def tidy(self, refill: bool) -> None:
        """Drop free slots once a quarter are free and none will be refilled, and leading columns no row
        uses once they are a quarter of the width."""
        dead = len(self.rows) - self.live
        first = int(self.mask.any(0).nonzero()[0])
        if (dead and not refill and 4 * dead >= len(self.rows)) or 4 * first >= self.mask.shape[1]:
            self.reshape(keep=[slot for slot, row in enumerate(self.rows) if row is not None], first=first)

    def reshape(self, slots: int | None = None, width: int | None = None, keep: list[int] | None = None,
                first: int = 0) -> None:
        """Copy the cache to new buffers: only the `keep` slots (all by default) then empty ones up to
        `slots`, without the first `first` columns, left-padded to `width` columns, with room to grow.
        Does nothing when that is the shape already and every layer has its room."""
        import torch
        import torch.nn.functional as F

        keep_index = None if keep is None else torch.tensor(keep, device=self.mask.device)
        kept = len(self.rows) if keep is None else len(keep)
        slots = max(slots or 0, kept)
        columns = self.mask.shape[1] - first
        width = max(width or 0, columns)
        if (keep is None and slots == len(self.rows) and width == self.mask.shape[1] and first == 0
                and all(_has_room(layer) for layer in self.cache.layers)):
            return
        for layer in self.cache.layers:
            buffers = []
            for held in (layer.keys, layer.values):
                held = held if keep_index is None else held.index_select(0, keep_index)
                buffer = held.new_zeros(slots, held.shape[1], width + max(64, width // 2), held.shape[3])
                buffer[:kept, :, width - columns : width] = held[:, :, first:]
                buffers.append(buffer)
            layer.buffer = tuple(buffers)
            layer.keys, layer.values = (buffer[:, :, :width] for buffer in buffers)
        mask = self.mask if keep_index is None else self.mask.index_select(0, keep_index)
        self.mask = F.pad(mask[:, first:], (width - columns, 0, 0, slots - kept))
        logits = self.logits if keep_index is None else self.logits.index_select(0, keep_index)
        self.logits = F.pad(logits, (0, 0, 0, slots - kept))
        rows = self.rows if keep is None else [self.rows[slot] for slot in keep]
        self.rows = rows + [None] * (slots - kept)


def _has_room(layer) -> bool:
    """Whether a layer's keys and values are views of the start of its buffers (appended to in place)."""
    buffer = getattr(layer, "buffer", None)
    return buffer is not None and all(
        held.data_ptr() == room.data_ptr() and held.stride() == room.stride() and held.shape[0] == room.shape[0]
        for held, room in zip((layer.keys, layer.values), buffer))


class SequentialBackend:
    """Wraps a backend to send one request per sample, as the official STAIR code does (for benchmarks)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.tokenizer = inner.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        return [[self.inner.generate([p], 1, sampling, mode)[0][0] for _ in range(n)] for p in prompts]


class VLLMBackend:
    """Offline vLLM engine with prefix caching: one request per prompt with `SamplingParams(n=...)`.

    Each request carries its own seed, derived from the engine seed, the call count and its place in the
    call, so the same calls in the same order draw the same samples (and a resumed search repeats them).
    `tensor_parallel_size` > 1 splits one engine over that many GPUs.
    """

    def __init__(self, path: str, seed: int = 0, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.85,
                 trust_remote_code: bool = False, max_model_len: int | None = None, tensor_parallel_size: int = 1):
        from vllm import LLM  # optional GPU extra

        self.llm = LLM(model=str(path), seed=seed, dtype=dtype, enable_prefix_caching=True,
                       gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code,
                       max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size)
        self.tokenizer = self.llm.get_tokenizer()
        self.seed = seed
        self.calls = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def sampling_state(self) -> dict:
        return {"calls": self.calls}  # each request's seed is derived from the call count

    def restore_sampling_state(self, state: dict) -> None:
        self.calls = state["calls"]

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        self.calls += 1
        params = [SamplingParams(
            n=1 if sampling.greedy else n,
            temperature=max(sampling.temperature, 0.0),
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            stop=stop_strings(mode),
            include_stop_str_in_output=True,
            skip_special_tokens=False,
            seed=self.seed * 1_000_003 + self.calls * 7919 + i,
        ) for i in range(len(prompts))]
        # Token ids, not text: vLLM would tokenize text with add_special_tokens and put a second BOS in front
        # of the one the chat template already wrote.
        token_prompts = [{"prompt_token_ids": ids} for ids in
                         self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        outputs = self.llm.generate(token_prompts, params, use_tqdm=False)
        results = []
        for request in outputs:
            samples = [Completion(o.text, len(o.token_ids), o.finish_reason == "stop") for o in request.outputs]
            results.append(samples * n if sampling.greedy else samples)
        return results


class OpenAIBackend:
    """Any OpenAI-compatible /v1/completions server (vLLM serve, SGLang, TGI), requests sent concurrently."""

    def __init__(self, base_url: str, model: str, tokenizer_path: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 120.0, trust_remote_code: bool = False):
        import os

        from transformers import AutoTokenizer

        key = os.environ.get(api_key_env, "")
        self.url = base_url.rstrip("/") + "/completions"
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.model, self.concurrency, self.timeout_s = model, concurrency, timeout_s
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _one(self, prompt: str, n: int, sampling: Sampling, mode: Mode) -> list[Completion]:
        body = {
            "model": self.model, "prompt": prompt, "n": 1 if sampling.greedy else n,
            "max_tokens": sampling.max_new_tokens, "temperature": max(sampling.temperature, 0.0),
            "top_p": sampling.top_p, "stop": stop_strings(mode),
            # vLLM/SGLang extensions; servers that do not know them ignore them.
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "include_stop_str_in_output": True, "skip_special_tokens": False,
            "add_special_tokens": False,  # the prompt is chat-rendered: its BOS is already there
        }
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{self.url} answered {err.code}: {err.read()[:300]!r}") from None
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != body["n"]:
            raise RuntimeError(f"{self.url} returned {len(choices)} completions for n={body['n']}: the server must "
                               "honour n (vLLM serve and SGLang do)")
        texts = [c["text"] for c in choices]
        counts = self.count_tokens(texts)
        samples = [Completion(t, k, c.get("finish_reason") == "stop") for t, k, c in zip(texts, counts, choices)]
        return samples * n if sampling.greedy else samples

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(p, n, sampling, mode), prompts))


@dataclass(frozen=True)
class BackendParams:
    """How to generate: `transformers` (CPU/GPU), `vllm` (GPU) or `openai` (a completions server)."""

    name: str = "transformers"
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 256
    base_url: str = "http://127.0.0.1:8000/v1"
    served_model: str = ""
    concurrency: int = 16
    gpu_memory_utilization: float = 0.85
    trust_remote_code: bool = False


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _transformers(path, params: BackendParams, seed: int) -> Backend:
    return TransformersBackend.from_path(path, device=resolve_device(params.device), dtype=params.dtype,
                                         batch_size=params.batch_size, seed=seed,
                                         trust_remote_code=params.trust_remote_code)


def _vllm(path, params: BackendParams, seed: int) -> Backend:
    import sys

    # In a Ray search actor the engine spans the GPUs Ray gave it (mcts.gpus_per_worker), tensor parallel;
    # elsewhere (a driver gets no GPU ids from Ray) it uses one GPU.
    ray = sys.modules.get("ray")
    gpus = len(ray.get_gpu_ids()) if ray is not None and ray.is_initialized() else 0
    return VLLMBackend(str(path), seed=seed, dtype=params.dtype if params.dtype != "float32" else "bfloat16",
                       gpu_memory_utilization=params.gpu_memory_utilization,
                       trust_remote_code=params.trust_remote_code, tensor_parallel_size=max(gpus, 1))


def _openai(path, params: BackendParams, seed: int) -> Backend:
    return OpenAIBackend(params.base_url, params.served_model or str(path), tokenizer_path=str(path),
                         concurrency=params.concurrency, trust_remote_code=params.trust_remote_code)


BACKENDS = {"transformers": _transformers, "vllm": _vllm, "openai": _openai}


def make_backend(path, params: BackendParams, seed: int = 0) -> Backend:
    """Build the backend named in `params.name` for the model at `path`."""
    if params.name not in BACKENDS:
        raise ValueError(f"backend.name={params.name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[params.name](path, params, seed)
