"""Option scoring for the transformers engine: many prompts per forward pass, shared prefixes read once.

Scoring a multiple-choice item reads a chat-templated prompt and takes the log-probability of each
option as the reply. :func:`score_rows` scores a batch of prompts:

1. Identical prompts (under one adapter) are read once.
2. A prefix that two or more prompts of the batch share (a persona's system prompt, the first words
   of a question) is read once, before the prompts that extend it, which then read only what
   follows it. Shared prefixes and prompts form a forest (a node's parent is its longest proper
   prefix among them) that is read in rounds by depth; a round is as few forward passes as the rows'
   lengths allow (:func:`~cultura.engines.forward.prefill_groups`, at most ``max_rows`` rows each).
   Every row resumes from its nearest ancestor read in this batch or from the engine's prefix cache,
   whichever is longer, and what it read goes into the prefix cache, so later batches (other
   methods, other questions for the same persona) resume from it too.
3. A prompt's last position gives every option's first token: single-token options (the numbered
   answers of a survey) need nothing more. A longer option continues from the prompt's key/value
   states, reading only its own tokens; the continuations of a batch share forward passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cultura.engines.base import Totals
from cultura.engines.forward import DecodeRow, forward_logits, prefill_groups, prompt_batch
from cultura.engines.prefix_cache import CachedPrefix, PrefixCache, common_prefix_length
from cultura.sampling import SamplingParams

SCORING = SamplingParams(max_tokens=1)  # a scoring row generates nothing; a DecodeRow carries sampling


@dataclass
class ScoreRow:
    """One prompt to score: its token ids, each option's token ids (one or more each), and the peft
    name of its adapter (the base model's alias when it has none)."""

    ids: list[int]
    options: list[list[int]]
    adapter: str


@dataclass
class ScoreStats(Totals):
    """Running totals of option scoring (the engine reports them): prompts scored and how many were
    identical to another in their batch, shared prefixes read once, the prompts' tokens and the
    tokens actually read for them (shared prefixes, uncached prompt parts and option continuations),
    positions computed (padding included), forward passes and seconds."""

    prompts: int = 0
    merged_prompts: int = 0
    shared_prefixes: int = 0
    prompt_tokens: int = 0
    read_tokens: int = 0
    positions: int = 0
    forward_passes: int = 0
    seconds: float = 0.0


@dataclass(eq=False)
class _Node:
    """A prompt or a shared prefix of the batch, with what reading it gave."""

    adapter: str
    ids: tuple[int, ...]
    prompt: bool
    parent: _Node | None = None
    depth: int = 0
    children: int = 0
    states: list[tuple[Any, Any]] | None = field(default=None, repr=False)  # per layer (keys, values)
    logprobs: Any = field(default=None, repr=False)  # a prompt's next-token log-probabilities

    def ancestors(self) -> Iterator[_Node]:
        """Parent, grandparent, ... (longest first)."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


def shared_prefixes(prompts: Sequence[Sequence[int]], min_tokens: int) -> set[tuple[int, ...]]:
    """The longest prefixes (``min_tokens`` or more) that pairs of ``prompts`` share.

    In sorted order every pair's longest common prefix is that of some neighbouring pair, so the
    neighbours' common prefixes are all of them.
    """
    ordered = sorted({tuple(p) for p in prompts})
    found = set()
    for a, b in zip(ordered, ordered[1:]):
        n = common_prefix_length(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        if n >= min_tokens:
            found.add(a[:n])
    return found


def prefix_forest(rows: Sequence[ScoreRow], min_tokens: int) -> dict[tuple[str, tuple[int, ...]], _Node]:
    """The batch's distinct prompts and shared prefixes, per adapter, each linked to its parent."""
    nodes: dict[tuple[str, tuple[int, ...]], _Node] = {}
    for adapter in sorted({r.adapter for r in rows}):
        prompts = {tuple(r.ids) for r in rows if r.adapter == adapter}
        stack: list[_Node] = []
        # sorted, a sequence comes right after its prefixes, and the sequences between a prefix and
        # a sequence extending it extend that prefix too: a stack of open prefixes finds each parent
        for ids in sorted(prompts | shared_prefixes(list(prompts), min_tokens)):
            while stack and not _extends(ids, stack[-1].ids):
                stack.pop()
            parent = stack[-1] if stack else None
            node = _Node(adapter, ids, ids in prompts, parent, parent.depth + 1 if parent else 0)
            if parent is not None:
                parent.children += 1
            nodes[(adapter, ids)] = node
            stack.append(node)
    return nodes


def _extends(ids: tuple[int, ...], prefix: tuple[int, ...]) -> bool:
    return len(prefix) < len(ids) and ids[:len(prefix)] == prefix


def score_rows(model: Any, rows: Sequence[ScoreRow], cache: PrefixCache, *, pad_id: int, use_adapters: bool,
               max_rows: int, stats: ScoreStats | None = None) -> list[list[float]]:
    """The total log-probability of every option of every row (the i-th list answers the i-th row).

    ``use_adapters``: ``model`` is a peft model and every row's ``adapter`` names one of its adapters
    (or the base model's alias). ``cache`` serves and keeps prefixes (a cache of 0 bytes keeps
    nothing: shared prefixes then serve only this batch). ``max_rows`` bounds a forward pass.
    """
    import torch

    stats = stats if stats is not None else ScoreStats()
    started = time.perf_counter()
    nodes = prefix_forest(rows, cache.min_tokens)
    keep = cache.max_bytes > 0
    continued = {(r.adapter, tuple(r.ids)) for r in rows if any(len(o) > 1 for o in r.options)}
    for depth in sorted({n.depth for n in nodes.values()}):
        todo = []
        for node in (n for n in nodes.values() if n.depth == depth):
            prefix = _resume_from(node, cache)
            if not node.prompt and prefix is not None and prefix.length >= len(node.ids) - 1:
                continue  # the cache holds this prefix already: whoever extends it finds it there
            todo.append((node, prefix))
        for node, prefix, logits, states in _read(model, todo, pad_id, use_adapters, max_rows, stats,
                                                   lambda n: keep or not n.prompt or n.children > 0
                                                   or (n.adapter, n.ids) in continued):
            if node.prompt:
                node.logprobs = torch.log_softmax(logits, dim=-1)
            node.states = states
            if keep and states is not None:
                cache.store(node.adapter, list(node.ids), states, resumed_from=prefix)
        stats.shared_prefixes += sum(1 for node, _ in todo if not node.prompt)
    tails = _continuations(model, rows, nodes, pad_id, use_adapters, max_rows, stats)
    scores = []
    for r in rows:
        node = nodes[(r.adapter, tuple(r.ids))]
        scores.append([float(node.logprobs[o[0]]) + tails.get((r.adapter, node.ids, tuple(o)), 0.0)
                       for o in r.options])
    prompts = sum(1 for n in nodes.values() if n.prompt)
    stats.prompts += len(rows)
    stats.merged_prompts += len(rows) - prompts
    stats.prompt_tokens += sum(len(r.ids) for r in rows)
    stats.seconds += time.perf_counter() - started
    return scores


def _resume_from(node: _Node, cache: PrefixCache) -> CachedPrefix | None:
    """The longest prefix of ``node`` already read: its nearest ancestor read in this batch, or the
    prefix cache's entry, whichever is longer."""
    read = next((a for a in node.ancestors() if a.states is not None), None)
    local = CachedPrefix(len(read.ids), read.states) if read is not None else None
    cached = cache.lookup(node.adapter, list(node.ids))
    if cached is not None and (local is None or cached.length > local.length):
        return cached
    return local


def _read(model: Any, todo: list[tuple[_Node, CachedPrefix | None]], pad_id: int, use_adapters: bool,
          max_rows: int, stats: ScoreStats, wants_states: Any) -> Iterator[tuple[_Node, CachedPrefix | None, Any, Any]]:
    """Read every node of ``todo`` after its resumed prefix, in forward passes of rows of similar
    length; yields (node, prefix, last-position logits, key/value states or None) per node (states
    only where ``wants_states(node)``)."""
    for chunk in _passes([len(node.ids) - (prefix.length if prefix else 0) for node, prefix in todo], max_rows):
        rows = [DecodeRow(list(todo[i][0].ids), SCORING, todo[i][0].adapter, todo[i][1]) for i in chunk]
        batch, ids, positions = prompt_batch(model, rows, pad_id, use_adapters, 0)
        logits = forward_logits(model, batch, ids, positions)[:, -1, :]
        _count(stats, batch, ids)
        for slot, i in enumerate(chunk):
            node, prefix = todo[i]
            yield node, prefix, logits[slot], batch.states(slot) if wants_states(node) else None


def _continuations(model: Any, rows: Sequence[ScoreRow], nodes: dict[tuple[str, tuple[int, ...]], _Node],
                   pad_id: int, use_adapters: bool, max_rows: int,
                   stats: ScoreStats) -> dict[tuple[str, tuple[int, ...], tuple[int, ...]], float]:
    """The log-probability of every multi-token option's tokens after its first, keyed by (adapter,
    prompt ids, option ids): each option's tokens but the last read after the prompt's states."""
    import torch

    wanted = {(r.adapter, tuple(r.ids), tuple(o)) for r in rows for o in r.options if len(o) > 1}
    todo = sorted(wanted)
    tails: dict[tuple[str, tuple[int, ...], tuple[int, ...]], float] = {}
    for chunk in _passes([len(option) - 1 for _, _, option in todo], max_rows):
        decode_rows = []
        for i in chunk:
            adapter, prompt, option = todo[i]
            node = nodes[(adapter, prompt)]
            decode_rows.append(DecodeRow(list(prompt + option[:-1]), SCORING, adapter,
                                         CachedPrefix(len(prompt), node.states)))
        batch, ids, positions = prompt_batch(model, decode_rows, pad_id, use_adapters, 0)
        width = max(len(todo[i][2]) - 1 for i in chunk)
        logprobs = torch.log_softmax(forward_logits(model, batch, ids, positions, width), dim=-1)
        _count(stats, batch, ids)
        for slot, i in enumerate(chunk):
            option = todo[i][2]
            targets = torch.tensor(option[1:], dtype=torch.long)
            read = logprobs[slot, width - len(targets):, :]  # left-padded: the row's tokens end the batch
            tails[todo[i]] = float(read.gather(1, targets[:, None]).sum())
    return tails


def _passes(lengths: Sequence[int], max_rows: int) -> Iterator[list[int]]:
    """Indices of rows to read together: groups of similar length, at most ``max_rows`` each."""
    for group in prefill_groups(lengths):
        for start in range(0, len(group), max_rows):
            yield group[start:start + max_rows]


def _count(stats: ScoreStats, batch: Any, ids: Any) -> None:
    stats.forward_passes += 1
    stats.positions += ids.numel()
    stats.read_tokens += int(batch.mask[:, -ids.shape[1]:].sum())
