"""Continuous batching over a transformers model's KV cache (`backend.name=transformers`, CPU or GPU)."""

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from stair.format import OUTPUT_CLOSE, STEP_CLOSE
from stair.generation.kv_cache import PrefixCache, appending_cache, has_room
from stair.generation.sampling import Completion, Mode, Sampling, request_seed, sample_tokens


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
        stream = self.stream(sampling)
        requests = [stream.add(prompt, n, mode, key) for prompt, key in zip(prompts, keys)]
        while stream.busy:
            stream.step()
        return [stream.completions(request) for request in requests]

    def stream(self, sampling: Sampling, join_share: float = 0.0) -> "Stream":
        """Requests decoded together as they are added, each handed back as soon as its samples are done (for a
        caller that acts on one result while others decode: SI-MCTS without a tick barrier); waiting samples
        join once they are `join_share` of the running ones."""
        return Stream(self, sampling, join_share)

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
        cache = appending_cache(self.model.config)
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


class Stream:
    """Text in, completions out, over one `_Decoding`: `add` requests at any time, `step` until `busy` is false,
    reading each request's `completions` once `step` has returned it. Requests share the stream's temperature,
    top-p and top-k; each has its own mode (stop tokens), token limit and key (its samples' seeds)."""

    def __init__(self, backend: "TransformersBackend", sampling: Sampling, join_share: float = 0.0):
        self.backend, self.sampling = backend, sampling
        self.decoding = _Decoding(backend, sampling, join_share)
        self.copies: list[int] = []  # per request: samples asked for (greedy decodes one and repeats it)

    @property
    def busy(self) -> bool:
        return self.decoding.busy

    def add(self, prompt: str, n: int, mode: Mode, key: str, max_new_tokens: int | None = None) -> int:
        """Queue n samples of `prompt`; returns the request's index."""
        ids = self.backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        copies = 1 if self.sampling.greedy else n
        self.copies.append(n)
        return self.decoding.add(ids, copies, key, max_new_tokens or self.sampling.max_new_tokens,
                                 self.backend._stop_ids[mode])

    def step(self) -> list[int]:
        """One decoding step; returns the requests that finished in it."""
        return self.decoding.step()

    def completions(self, request: int) -> list[Completion]:
        decode = self.backend._decode
        done = [Completion(decode(ids), len(ids), stopped) for ids, stopped in self.decoding.samples[request]]
        return done * self.copies[request] if self.sampling.greedy else done


class _Decoding:
    """Samples decoding together with one sampling rule (temperature, top-p, top-k), each request with its own
    stop tokens and token limit: requests are added, and `step` decodes one token of every running sample.

    Waiting samples join in order of prompt length (then request, then sample), so a prefill pads little, and
    only once they are at least `join_share` of the running ones (a prefill pass costs a decoding step or more
    whatever its rows); a sample that stops frees its slot for a waiting one (`_Batch`).
    """

    def __init__(self, backend: TransformersBackend, sampling: Sampling, join_share: float = 0.0):
        self.backend, self.sampling, self.join_share = backend, sampling, join_share
        self.prompts: list[list[int]] = []
        self.samples: list[list[tuple[list[int], bool] | None]] = []  # per request: (token ids, stopped) per sample
        self.rows: list[tuple[str, int, frozenset]] = []  # per request: key, token limit, stop ids
        self.waiting: list[tuple[int, int, int]] = []  # (prompt length, request, sample), in joining order
        self.unfinished: list[int] = []  # per request: samples not yet done
        self.batch = _Batch()

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.batch.live)

    def add(self, prompt_ids: list[int], copies: int, key: str, max_new_tokens: int, stop_ids: frozenset) -> int:
        """Queue `copies` samples of a prompt; returns the request's index."""
        request = len(self.prompts)
        self.prompts.append(prompt_ids)
        self.samples.append([None] * copies)
        self.rows.append((key, max_new_tokens, stop_ids))
        self.unfinished.append(copies)
        for sample in range(copies):
            bisect.insort(self.waiting, (len(prompt_ids), request, sample))
        return request

    def step(self) -> list[int]:
        """Let waiting samples join, sample one token for every running sample, run the next forward; returns
        the requests whose last sample finished in this step."""
        import torch

        backend, batch = self.backend, self.batch
        device = backend.model.device
        with torch.no_grad():
            # Waiting samples take the free slots, a few at a time (a prefill pass costs more for few rows).
            free = backend.batch_size - batch.live
            if (self.waiting and free >= min(len(self.waiting), max(1, backend.batch_size // 8))
                    and len(self.waiting) >= self.join_share * batch.live):
                taken = min(free, len(self.waiting))
                joining = sorted((request, sample) for _, request, sample in self.waiting[:taken])
                del self.waiting[:taken]
                prompts = sorted({request for request, _ in joining})
                batch.place(*backend._prefill([self.prompts[i] for i in prompts],
                                              [sum(i == p for i, _ in joining) for p in prompts]),
                            [_Row(i, j, random.Random(request_seed(backend.seed, self.rows[i][0], j)),
                                  len(self.prompts[i])) for i, j in joining])
            slots = [slot for slot, row in enumerate(batch.rows) if row is not None]
            logits = batch.logits.index_select(0, torch.tensor(slots, device=device))
            tokens = sample_tokens(logits, self.sampling, [batch.rows[slot].rng.random() for slot in slots])
            finished, done = [], []
            for slot, token in zip(slots, tokens):
                row = batch.rows[slot]
                row.tokens.append(token)
                _, max_new_tokens, stop_ids = self.rows[row.request]
                if token in stop_ids or len(row.tokens) >= max_new_tokens:
                    self.samples[row.request][row.sample] = (row.tokens, token in stop_ids)
                    finished.append(slot)
                    self.unfinished[row.request] -= 1
                    if not self.unfinished[row.request]:
                        done.append(row.request)
            batch.finish(finished)
            if not batch.live:
                self.batch = _Batch()
                return done
            batch.tidy(refill=bool(self.waiting))
            pad = backend.tokenizer.pad_token_id
            step = [[row.tokens[-1] if row else pad] for row in batch.rows]
            positions = torch.tensor([[row.position if row else 0] for row in batch.rows], device=device)
            for row in batch.rows:
                if row:
                    row.position += 1
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.rows), 1)], dim=1)
            batch.logits = backend._forward(torch.tensor(step, device=device), batch.mask, positions, batch.cache)
        return done


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
                and all(has_room(layer) for layer in self.cache.layers)):
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
