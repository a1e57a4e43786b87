"""Key/value states of past prompts, kept so a prompt that extends one skips re-reading it.

A CulturePark dialogue asks each agent for one turn at a time, and every turn's prompt is the
previous one plus a few new messages; verification and extraction prompts share long instruction
prefixes. On a CPU, reading a prompt (prefill) costs about as much per token as writing one, so the
transformers engine keeps the key/value states of what it has read and written, per adapter, and a
new prompt reads only the tokens after its longest cached prefix.

An entry is one token sequence with its per-layer key/value tensors (``[kv_heads, tokens, head_dim]``).
Storing an entry drops the entries it extends (their tokens are a prefix of its own). Entries beyond
the byte budget go least recently used first, and the entry a prompt was resumed from goes before
all others: what it holds beyond the shared part (a dialogue's guidance for a turn already answered)
is rarely asked for again, while the shared part may still serve another prompt (a system prompt
that every dialogue of a persona starts with) until memory is needed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class CachedPrefix:
    """The first ``length`` tokens of a prompt, found in the cache entry ``key``, and their key/value
    states."""

    length: int
    layers: list[tuple[Any, Any]]  # per layer (keys, values), each [kv_heads, >= length, head_dim]
    key: int = -1


@dataclass
class _Entry:
    adapter: str
    tokens: np.ndarray
    layers: list[tuple[Any, Any]]
    nbytes: int


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


class PrefixCache:
    """Key/value states of token sequences by adapter, bounded by ``max_bytes`` (LRU eviction).

    ``min_tokens`` is the shortest shared prefix worth reusing (a chat template's first few tokens
    are shared by every prompt and save nothing).
    """

    def __init__(self, max_bytes: int, min_tokens: int = 16):
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, adapter: str, tokens: list[int]) -> CachedPrefix | None:
        """The longest cached prefix of ``tokens`` (at most all but the last token) under ``adapter``."""
        if self.max_bytes <= 0:
            return None
        query = np.asarray(tokens, dtype=np.int64)
        best_key, best_length = None, 0
        for key, entry in self._entries.items():
            if entry.adapter == adapter:
                length = common_prefix_length(entry.tokens, query)
                if length > best_length:
                    best_key, best_length = key, length
        best_length = min(best_length, len(tokens) - 1)  # the last token must be read to predict the next
        if best_key is None or best_length < self.min_tokens:
            self.misses += 1
            return None
        self._entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best_length
        return CachedPrefix(best_length, self._entries[best_key].layers, best_key)

    def store(self, adapter: str, tokens: list[int], layers: list[tuple[Any, Any]],
              resumed_from: CachedPrefix | None = None) -> None:
        """Keep ``layers`` (the key/value states of exactly ``tokens``) under ``adapter``.

        ``resumed_from``: the cached prefix the prompt was read from; its entry becomes the first
        to go when memory is needed (see the module docstring).
        """
        if resumed_from is not None and resumed_from.key in self._entries:
            self._entries.move_to_end(resumed_from.key, last=False)
        if self.max_bytes <= 0 or len(tokens) < self.min_tokens:
            return
        array = np.asarray(tokens, dtype=np.int64)
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if nbytes > self.max_bytes:
            return
        for key in [k for k, e in self._entries.items()
                    if e.adapter == adapter and len(e.tokens) <= len(array)
                    and common_prefix_length(e.tokens, array) == len(e.tokens)]:
            self._drop(key)
        while self._entries and self.nbytes + nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[self._next_key] = _Entry(adapter, array, layers, nbytes)
        self._next_key += 1
        self.nbytes += nbytes

    def clear(self) -> None:
        """Forget every entry (for example after an adapter under a known name changed)."""
        self._entries.clear()
        self.nbytes = 0

    def stats(self) -> dict[str, int]:
        """Entries, bytes held, hits, misses and prompt tokens not re-read thanks to the cache."""
        return {"entries": len(self._entries), "bytes": self.nbytes, "hits": self.hits, "misses": self.misses,
                "reused_tokens": self.reused_tokens}

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
