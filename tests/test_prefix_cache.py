"""The prefix cache's bookkeeping, on small tensors (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from cultura.engines.prefix_cache import PrefixCache, common_prefix_length


def states(n: int, layers: int = 2):
    """Key/value tensors for ``n`` tokens: [kv_heads=1, n, head_dim=4] per layer, 32 bytes a token a layer."""
    import torch

    return [(torch.arange(n * 4, dtype=torch.float32).reshape(1, n, 4),) * 2 for _ in range(layers)]


def test_common_prefix_length():
    a = np.array([1, 2, 3, 4])
    assert common_prefix_length(a, np.array([1, 2, 9])) == 2
    assert common_prefix_length(a, np.array([1, 2, 3, 4, 5])) == 4
    assert common_prefix_length(a, np.array([7])) == 0
    assert common_prefix_length(a, np.array([], dtype=np.int64)) == 0


def test_lookup_finds_the_longest_prefix_and_leaves_the_last_token_to_read():
    cache = PrefixCache(1 << 20, min_tokens=2)
    cache.store("base", [1, 2, 3, 4, 5], states(5))
    cache.store("base", [1, 2, 7, 8], states(4))
    assert cache.lookup("base", [1, 2, 3, 4, 5, 6]).length == 5
    assert cache.lookup("base", [1, 2, 7, 8, 9]).length == 4
    assert cache.lookup("base", [1, 2, 3, 4, 5]).length == 4, "the last prompt token is always read"
    assert cache.lookup("base", [9, 9, 9]) is None
    assert cache.stats()["hits"] == 3 and cache.stats()["misses"] == 1


def test_adapters_do_not_share_states():
    cache = PrefixCache(1 << 20, min_tokens=2)
    cache.store("base", [1, 2, 3, 4], states(4))
    assert cache.lookup("alpha", [1, 2, 3, 4, 5]) is None
    assert cache.lookup("base", [1, 2, 3, 4, 5]).length == 4


def test_an_extending_entry_replaces_its_prefix_and_a_resumed_one_goes_first():
    per_entry = 6 * 2 * 2 * 4 * 4  # 6 tokens x (keys + values) x 2 layers x 4 floats x 4 bytes
    cache = PrefixCache(2 * per_entry, min_tokens=2)
    cache.store("base", [1, 2, 3], states(3))
    cache.store("base", [1, 2, 3, 4, 5, 6], states(6))  # extends the first
    assert len(cache) == 1
    cache.store("base", [7, 7, 7, 7, 7, 7], states(6))  # another conversation, used after the first
    hit = cache.lookup("base", [1, 2, 3, 4, 9, 9])  # a turn whose prompt left the old tail out
    cache.store("base", [1, 2, 3, 4, 9, 9], states(6), resumed_from=hit)
    assert len(cache) == 2, "the budget holds two entries"
    assert cache.lookup("base", [1, 2, 3, 4, 5, 6, 8]).length == 4, "the resumed entry went first"
    assert cache.lookup("base", [7, 7, 7, 7, 7, 7, 8]).length == 6


def test_the_byte_budget_evicts_least_recently_used_entries():
    per_entry = 4 * 2 * 2 * 4 * 4  # 4 tokens x (keys + values) x 2 layers x 4 floats x 4 bytes
    cache = PrefixCache(3 * per_entry, min_tokens=2)
    for first in (10, 20, 30):
        cache.store("base", [first, 1, 2, 3], states(4))
    cache.lookup("base", [10, 1, 2, 3, 4])  # 10 is now the most recently used
    cache.store("base", [40, 1, 2, 3], states(4))
    assert len(cache) == 3 and cache.nbytes == 3 * per_entry
    assert cache.lookup("base", [20, 1, 2, 3, 4]) is None, "the least recently used entry went first"
    assert cache.lookup("base", [10, 1, 2, 3, 4]) is not None


@pytest.mark.parametrize("tokens", [[1], [1, 2, 3]])
def test_short_sequences_and_a_zero_budget_store_nothing(tokens):
    assert len(_stored(PrefixCache(1 << 20, min_tokens=4), tokens)) == 0
    assert len(_stored(PrefixCache(0, min_tokens=1), tokens)) == 0


def _stored(cache: PrefixCache, tokens: list[int]) -> PrefixCache:
    cache.store("base", tokens, states(len(tokens)))
    return cache


def test_prefill_groups_keep_padding_small_and_every_row_once():
    from cultura.engines.forward import prefill_groups

    lengths = [124] * 8 + [60] * 24
    groups = prefill_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(32))
    assert len(groups) == 2
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert padded < 0.75 * 32 * 124, "one group would pad every row to 124 tokens"
    assert prefill_groups([10, 12, 11]) == [[1, 2, 0]], "too few positions to split"
    assert prefill_groups([]) == []
