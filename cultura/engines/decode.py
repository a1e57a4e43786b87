"""The transformers engine's decode loop: one batch of prompts, each resumed from its cached prefix.

``decode`` reads every row's uncached prompt tokens (rows of similar length in one forward pass,
left-padded; a row's cached key/values sit before its new tokens, the attention mask marking the
gaps), joins the groups into one batch, then generates one token per row per step. Each row samples with its own settings and its
own random generator (so a seeded request gives the same answer whatever it is batched with), stops
at its own ``max_tokens``, end-of-sequence token or stop string, and leaves the batch when a quarter
of the batch has finished, so long answers do not drag finished rows along. With ``keep_states`` a
finished row hands back the key/value states of every token it read, for the prefix cache. A row
whose caller has gone (``cancelled``) ends at the next step with finish reason ``cancelled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cultura.engines.base import Totals
from cultura.engines.forward import Batch, DecodeRow, join_batches, last_logits, prefill_groups, prompt_batch
from cultura.engines.int8_linear import int8_weights
from cultura.engines.repetition import RepetitionGuard, ban_repeated_ngrams
from cultura.engines.sampler import choose_tokens, row_generator

CANCELLED = "cancelled"  # the finish reason of a row whose caller went away


@dataclass
class DecodeOutput:
    """What one row generated (end-of-sequence token excluded) and, with ``keep_states``, the
    key/value states of ``read_ids`` (the prompt plus every generated token but the last).
    ``first_token_at`` and ``last_token_at`` are the ``time.perf_counter()`` readings when its first
    and last tokens of ``new_ids`` came (both the end-of-sequence token's when ``new_ids`` is empty)."""

    new_ids: list[int]
    finish_reason: str
    read_ids: list[int]
    layers: list[tuple[Any, Any]] | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None


@dataclass
class DecodeStats(Totals):
    """Running totals of the decode loop (the engine reports them): prompt tokens read and the
    positions computed for them (padding included), decode steps and rows decoded, and seconds."""

    prefill_tokens: int = 0
    prefill_positions: int = 0
    prefill_seconds: float = 0.0
    decode_steps: int = 0
    decode_rows: int = 0
    decode_seconds: float = 0.0
    rows_cancelled: int = 0


def decode(model: Any, rows: Sequence[DecodeRow], *, eos_ids: set[int], pad_id: int, use_adapters: bool,
           keep_states: bool = False, stopped: Callable[[int, list[int]], bool] | None = None,
           stats: DecodeStats | None = None, cancelled: Callable[[int], bool] | None = None,
           int8_rows: int = 0) -> list[DecodeOutput]:
    """Generate a continuation for every row; the i-th output answers the i-th row.

    ``use_adapters``: ``model`` is a peft model and every row's ``adapter`` names one of its adapters
    (or its base-model alias). ``stopped(i, new_ids)`` says whether row i hit one of its stop strings.
    ``cancelled(i)``, asked at every step, says whether row i's caller has gone: the row then ends
    with finish reason ``cancelled`` (no states kept) and leaves the batch. ``stats`` gathers the
    loop's totals. A decode step of at most ``int8_rows`` rows runs on the model's int8 weights
    (:mod:`cultura.engines.int8_linear`; 0: never); prompts are always read in the model's dtype.
    """
    import torch

    stats = stats if stats is not None else DecodeStats()
    batch, logits = _prefill(model, rows, pad_id, use_adapters, stats)
    started = time.perf_counter()
    generators = [row_generator(r.sampling) for r in rows]
    guard = RepetitionGuard([r.ids for r in rows], [r.sampling.repetition_penalty for r in rows])
    sampled: list[list[int]] = [[] for _ in rows]
    first_at: list[float | None] = [None] * len(rows)
    last_at: list[float | None] = [None] * len(rows)
    outputs: list[DecodeOutput | None] = [None] * len(rows)
    while True:
        logits = guard.penalize(logits, batch.rows, sampled)
        logits = ban_repeated_ngrams(logits, batch.rows, sampled, [r.sampling.no_repeat_ngram_size for r in rows])
        chosen = choose_tokens(logits, [rows[i].sampling for i in batch.rows], [generators[i] for i in batch.rows])
        now = time.perf_counter()
        for slot, (i, token) in enumerate(zip(batch.rows, chosen)):
            if outputs[i] is not None:  # finished earlier, still in the batch
                continue
            if cancelled is not None and cancelled(i):
                outputs[i] = DecodeOutput(sampled[i], CANCELLED, rows[i].ids + sampled[i])
                stats.rows_cancelled += 1
                continue
            sampled[i].append(token)
            reason = _finish_reason(token, sampled[i], rows[i], eos_ids, stopped, i)
            if reason != "eos" or last_at[i] is None:  # an end-of-sequence token is not an output token
                first_at[i] = first_at[i] or now
                last_at[i] = now
            if reason is None:
                continue
            new_ids = sampled[i][:-1] if reason == "eos" else sampled[i]
            outputs[i] = DecodeOutput(new_ids, "length" if reason == "length" else "stop",
                                      rows[i].ids + sampled[i][:-1], batch.states(slot) if keep_states else None,
                                      first_at[i], last_at[i])
        live = [slot for slot, i in enumerate(batch.rows) if outputs[i] is None]
        if not live:
            break
        tokens = torch.tensor(chosen, dtype=torch.long)
        # finished rows leave once they are a quarter of the batch: selecting rows copies the whole
        # cache, so doing it for every single finished row would cost more than it saves; cancelled
        # rows leave at once (a batch of abandoned rows would otherwise run to its longest max_tokens)
        gone = any(outputs[i] is not None and outputs[i].finish_reason == CANCELLED for i in batch.rows)
        if gone or (len(batch.rows) - len(live)) * 4 >= len(batch.rows):
            batch.keep(live)
            tokens = tokens[torch.tensor(live, dtype=torch.long)]
        still = torch.tensor([outputs[i] is None for i in batch.rows], dtype=batch.mask.dtype)
        batch.mask = torch.cat([batch.mask, still[:, None]], dim=1)
        batch.positions = batch.positions + 1
        stats.decode_steps += 1
        stats.decode_rows += len(batch.rows)
        with int8_weights(len(batch.rows), int8_rows):
            logits = last_logits(model, batch, tokens[:, None], batch.positions[:, None])
    stats.decode_seconds += time.perf_counter() - started
    return outputs  # type: ignore[return-value]


def _prefill(model: Any, rows: Sequence[DecodeRow], pad_id: int, use_adapters: bool,
             stats: DecodeStats) -> tuple[Batch, Any]:
    """Read every row's uncached prompt tokens, in groups of similar length; returns the joined
    batch (slots in group order) and each slot's next-token logits."""
    import torch

    started = time.perf_counter()
    new_tokens = [len(r.ids) - (r.prefix.length if r.prefix else 0) for r in rows]
    groups = prefill_groups(new_tokens)
    room = max(r.sampling.max_tokens for r in rows)
    parts = []
    for group in groups:  # groups that will be joined leave the room to the joined cache
        batch, ids, positions = prompt_batch(model, [rows[i] for i in group], pad_id, use_adapters,
                                             room if len(groups) == 1 else 0)
        batch.rows = group
        parts.append((batch, last_logits(model, batch, ids, positions)))
        stats.prefill_positions += ids.numel()
    stats.prefill_tokens += sum(new_tokens)
    stats.prefill_seconds += time.perf_counter() - started
    if len(parts) == 1:
        return parts[0]
    return join_batches([batch for batch, _ in parts], room), torch.cat([logits for _, logits in parts])


def _finish_reason(token: int, sampled: list[int], row: DecodeRow, eos_ids: set[int],
                   stopped: Callable[[int, list[int]], bool] | None, index: int) -> str | None:
    """Why row ``index`` stops after sampling ``token`` ("eos", "length", "stop"), or None."""
    if token in eos_ids:
        return "eos"
    if stopped is not None and row.sampling.stop and stopped(index, sampled):
        return "stop"
    if len(sampled) >= row.sampling.max_tokens:
        return "length"
    return None
