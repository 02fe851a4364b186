"""The transformers backend's prompt cache: longest cached prefix, LRU eviction by bytes, bounded index."""

import torch

from stair.generation.kv_cache import PrefixCache


def kv(tokens: int) -> list:
    """One layer's keys and values for one row: [heads=1, tokens, head_dim=2], float32 (8 bytes a token each)."""
    return [(torch.arange(tokens * 2.0).reshape(1, tokens, 2), torch.zeros(1, tokens, 2))]


def test_longest_prefix_is_found_up_to_all_but_the_last_token() -> None:
    cache = PrefixCache(max_bytes=1 << 20)
    cache.add([1, 2, 3], kv(3))
    assert cache.longest([1, 2, 3, 4])[0][0].shape[1] == 3
    assert cache.longest([1, 2, 3])[0][0].shape[1] == 2  # the last token's logits must come from a pass
    assert cache.longest([1, 9, 3])[0][0].shape[1] == 1  # only the first token is shared
    assert cache.longest([7, 8]) is None


def test_least_recently_used_entries_go_first_and_the_index_stays_bounded() -> None:
    per_entry = 10 * 16  # 10 tokens, keys and values of 8 bytes a token
    cache = PrefixCache(max_bytes=3 * per_entry)
    for first in range(3):
        cache.add([first] + list(range(100, 109)), kv(10))
    cache.longest([0] + list(range(100, 110)))  # entry 0 used last: entry 1 is now the oldest
    cache.add([3] + list(range(100, 109)), kv(10))
    assert [key[0] for key in cache.entries] == [2, 0, 3]
    assert cache.bytes == 3 * per_entry and cache.tokens == 30
    for first in range(4, 400):  # many evictions: the hash index is pruned to the entries still held
        cache.add([first] + list(range(100, 109)), kv(10))
    assert len(cache.entries) == 3 and cache.tokens == 30
    assert len(cache.by_prefix) <= 4 * cache.tokens + 1024 + 10
    cache.clear()
    assert cache.bytes == cache.tokens == 0 and cache.longest([5, 100]) is None
