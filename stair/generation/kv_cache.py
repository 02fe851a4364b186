"""The KV caches of the transformers backend: prompts kept across calls, and layers that append in place."""

import functools
from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """KV caches of prompts run before (one row each, [heads, tokens, head_dim] per layer and K/V), least
    recently used dropped past `max_bytes`. `longest` finds the longest prefix a new prompt shares with any of
    them (at most all but its last token, whose logits the prompt's pass must give)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.tokens = max_bytes, 0, 0  # tokens: of all entries, to tidy `by_prefix`
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
        self.entries[key], self.bytes, self.tokens, self.shape = kv, self.bytes + size, self.tokens + len(key), kv
        for length, value in enumerate(self._hashes(ids), start=1):
            self.by_prefix[(length, value)] = key
        while self.bytes > self.max_bytes and self.entries:
            dropped_key, dropped = self.entries.popitem(last=False)
            self.bytes -= sum(k.numel() * k.element_size() * 2 for k, _ in dropped)
            self.tokens -= len(dropped_key)
        if len(self.by_prefix) > 4 * self.tokens + 1024:  # forget dropped entries' hashes
            self.by_prefix = {k: e for k, e in self.by_prefix.items() if e in self.entries}

    def blank(self, layer: int, part: int, length: int):
        """Zeros shaped like one row's cached keys (part 0) or values (part 1) of `layer`, `length` long."""
        like = self.shape[layer][part]
        return like.new_zeros(like.shape[0], length, like.shape[2])

    def clear(self) -> None:
        self.entries.clear()
        self.by_prefix.clear()
        self.bytes = self.tokens = 0


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
            if not has_room(self) or length + adding > self.buffer[0].shape[2]:
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


def appending_cache(config):
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


def has_room(layer) -> bool:
    """Whether a layer's keys and values are views of the start of its buffers (appended to in place)."""
    buffer = getattr(layer, "buffer", None)
    return buffer is not None and all(
        held.data_ptr() == room.data_ptr() and held.stride() == room.stride() and held.shape[0] == room.shape[0]
        for held, room in zip((layer.keys, layer.values), buffer))
