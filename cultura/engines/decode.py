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

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cultura.sampling import SamplingParams
from cultura.engines.prefix_cache import CachedPrefix
from cultura.engines.repetition import RepetitionGuard, ban_repeated_ngrams

CANCELLED = "cancelled"  # the finish reason of a row whose caller went away


@dataclass
class DecodeRow:
    """One prompt to continue: its token ids, peft adapter name (or None), sampling and cached prefix."""

    ids: list[int]
    sampling: SamplingParams
    adapter: str | None = None
    prefix: CachedPrefix | None = None


@dataclass
class DecodeOutput:
    """What one row generated (end-of-sequence token excluded) and, with ``keep_states``, the
    key/value states of ``read_ids`` (the prompt plus every generated token but the last)."""

    new_ids: list[int]
    finish_reason: str
    read_ids: list[int]
    layers: list[tuple[Any, Any]] | None = None


class Totals:
    """Running totals an engine reports (a dataclass of counts and seconds)."""

    def as_dict(self) -> dict[str, float]:
        """Plain values, seconds rounded."""
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


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


def prefill_groups(lengths: Sequence[int], waste: float = 0.25, min_positions: int = 1024) -> list[list[int]]:
    """Row indices grouped for reading their prompts, longest first.

    A group is padded to its longest row, so mixing a 120-token prompt with 60-token ones would
    compute twice the positions needed. A group grows while its padded positions stay within
    ``waste`` of its real ones, or while it holds fewer than ``min_positions`` real positions (a
    forward pass over a few hundred positions uses the CPUs poorly).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        if current and real >= min_positions and \
                (len(current) + 1) * lengths[current[0]] > (1 + waste) * (real + lengths[i]):
            groups.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        groups.append(current)
    return groups


@functools.cache
def _reserved_layer_class() -> type:
    """A transformers ``DynamicLayer`` whose buffers keep room for the tokens still to come.

    The plain layer appends each step's key/value with ``torch.cat``, copying the whole cache every
    step: for 32 rows of 350 tokens that is half a gigabyte per step on this model. This one writes
    the step in place and hands out views of the filled part.
    """
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        def __init__(self, room: int, keys: Any = None, values: Any = None):
            super().__init__()
            self.room = room
            if keys is not None:
                self._allocate(keys, values)

        def _allocate(self, keys: Any, values: Any) -> None:
            self.length = keys.shape[-2]
            self._keys = keys.new_empty((*keys.shape[:2], self.length + self.room, keys.shape[-1]))
            self._values = values.new_empty((*values.shape[:2], self.length + self.room, values.shape[-1]))
            self._keys[:, :, :self.length], self._values[:, :, :self.length] = keys, values
            self.device, self.is_initialized = keys.device, True
            self._expose()

        def _expose(self) -> None:
            self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self._allocate(key_states, value_states)
                return self.keys, self.values
            n = key_states.shape[-2]
            if self.length + n > self._keys.shape[-2]:  # out of room: keep what is there, double the room
                self.room = max(2 * self.room, n)
                self._allocate(self.keys, self.values)
            self._keys[:, :, self.length:self.length + n] = key_states
            self._values[:, :, self.length:self.length + n] = value_states
            self.length += n
            self._expose()
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()

    return ReservedLayer


def _reserved_cache(room: int, layers: Sequence[tuple[Any, Any]] | None = None, config: Any = None) -> Any:
    """A transformers cache with ``room`` free positions per row: filled with ``layers`` ((keys,
    values) per layer), or empty as ``config`` lays it out, its plain layers reserving room on their
    first states (other kinds, such as sliding-window layers, stay as transformers made them)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layer_class = _reserved_layer_class()
    if layers is not None:
        cache = DynamicCache()
        cache.layers = [layer_class(room, keys, values) for keys, values in layers]
    else:
        cache = DynamicCache(config=config)
        cache.layers = [layer_class(room) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class _Batch:
    """The rows still decoding: their cache, attention mask, last positions and adapter names.

    ``cache_kwarg`` is what the model's forward calls its cache ("cache"; "past_key_values" before
    transformers 5.2x renamed it).
    """

    def __init__(self, cache: Any, mask: Any, positions: Any, rows: list[int], adapter_names: list[str] | None,
                 cache_kwarg: str):
        self.cache, self.mask, self.positions, self.rows = cache, mask, positions, rows
        self.adapter_names, self.cache_kwarg = adapter_names, cache_kwarg

    def keep(self, slots: list[int]) -> None:
        """Keep only the batch slots ``slots`` (in order)."""
        import torch

        index = torch.tensor(slots, dtype=torch.long)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.rows = [self.rows[s] for s in slots]
        if self.adapter_names is not None:
            self.adapter_names = [self.adapter_names[s] for s in slots]

    def states(self, slot: int) -> list[tuple[Any, Any]]:
        """Copies of the key/value states of the tokens slot ``slot`` has read, per layer."""
        read = self.mask[slot].nonzero().squeeze(1)
        return [(layer.keys[slot][:, read], layer.values[slot][:, read]) for layer in self.cache.layers]


def decode(model: Any, rows: Sequence[DecodeRow], *, eos_ids: set[int], pad_id: int, use_adapters: bool,
           keep_states: bool = False, stopped: Callable[[int, list[int]], bool] | None = None,
           stats: DecodeStats | None = None, cancelled: Callable[[int], bool] | None = None) -> list[DecodeOutput]:
    """Generate a continuation for every row; the i-th output answers the i-th row.

    ``use_adapters``: ``model`` is a peft model and every row's ``adapter`` names one of its adapters
    (or its base-model alias). ``stopped(i, new_ids)`` says whether row i hit one of its stop strings.
    ``cancelled(i)``, asked at every step, says whether row i's caller has gone: the row then ends
    with finish reason ``cancelled`` (no states kept) and leaves the batch. ``stats`` gathers the
    loop's totals.
    """
    import torch

    stats = stats if stats is not None else DecodeStats()
    batch, logits = _prefill(model, rows, pad_id, use_adapters, stats)
    started = time.perf_counter()
    generators = [_generator(r.sampling) for r in rows]
    guard = RepetitionGuard([r.ids for r in rows], [r.sampling.repetition_penalty for r in rows])
    sampled: list[list[int]] = [[] for _ in rows]
    outputs: list[DecodeOutput | None] = [None] * len(rows)
    while True:
        logits = guard.penalize(logits, batch.rows, sampled)
        logits = ban_repeated_ngrams(logits, batch.rows, sampled, [r.sampling.no_repeat_ngram_size for r in rows])
        chosen = _choose(logits, [rows[i].sampling for i in batch.rows], [generators[i] for i in batch.rows])
        for slot, (i, token) in enumerate(zip(batch.rows, chosen)):
            if outputs[i] is not None:  # finished earlier, still in the batch
                continue
            if cancelled is not None and cancelled(i):
                outputs[i] = DecodeOutput(sampled[i], CANCELLED, rows[i].ids + sampled[i])
                stats.rows_cancelled += 1
                continue
            sampled[i].append(token)
            reason = _finish_reason(token, sampled[i], rows[i], eos_ids, stopped, i)
            if reason is None:
                continue
            new_ids = sampled[i][:-1] if reason == "eos" else sampled[i]
            outputs[i] = DecodeOutput(new_ids, "length" if reason == "length" else "stop",
                                      rows[i].ids + sampled[i][:-1], batch.states(slot) if keep_states else None)
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
        logits = _forward(model, batch, tokens[:, None], batch.positions[:, None])
    stats.decode_seconds += time.perf_counter() - started
    return outputs  # type: ignore[return-value]


def cache_kwarg(model: Any) -> str:
    """The name ``model``'s forward gives its key/value cache argument."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _prefill(model: Any, rows: Sequence[DecodeRow], pad_id: int, use_adapters: bool,
             stats: DecodeStats) -> tuple[_Batch, Any]:
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
        parts.append((batch, _forward(model, batch, ids, positions)))
        stats.prefill_positions += ids.numel()
    stats.prefill_tokens += sum(new_tokens)
    stats.prefill_seconds += time.perf_counter() - started
    if len(parts) == 1:
        return parts[0]
    return _join([batch for batch, _ in parts], room), torch.cat([logits for _, logits in parts])


def _join(batches: list[_Batch], room: int) -> _Batch:
    """One batch of several, each left-padded (keys, values and mask) to the longest, with ``room``
    free positions per row."""
    import torch
    import torch.nn.functional as F

    width = max(b.mask.shape[1] for b in batches)

    def padded(tensor: Any, length: int) -> Any:  # left-pad the sequence dimension (-2 for states)
        gap = width - length
        return F.pad(tensor, (0, 0, gap, 0) if tensor.dim() == 4 else (gap, 0)) if gap else tensor

    layers = [(torch.cat([padded(b.cache.layers[i].keys, b.mask.shape[1]) for b in batches]),
               torch.cat([padded(b.cache.layers[i].values, b.mask.shape[1]) for b in batches]))
              for i in range(len(batches[0].cache.layers))]
    names = None if batches[0].adapter_names is None else [n for b in batches for n in b.adapter_names]
    return _Batch(_reserved_cache(room, layers), torch.cat([padded(b.mask, b.mask.shape[1]) for b in batches]),
                  torch.cat([b.positions for b in batches]), [i for b in batches for i in b.rows], names,
                  batches[0].cache_kwarg)


def prompt_batch(model: Any, rows: Sequence[DecodeRow], pad_id: int, use_adapters: bool,
                 room: int) -> tuple[_Batch, Any, Any]:
    """The batch for the first forward pass, with its input ids and positions: each row's cached
    prefix ends where the cached part ends, its new tokens end where the batch ends. Its cache keeps
    ``room`` free positions per row after the prompt."""
    import torch

    cached = [r.prefix.length if r.prefix else 0 for r in rows]
    suffixes = [r.ids[c:] for r, c in zip(rows, cached)]
    width_cached, width_new = max(cached), max(len(s) for s in suffixes)
    ids = torch.full((len(rows), width_new), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width_cached + width_new), dtype=torch.long)
    positions = torch.zeros((len(rows), width_new), dtype=torch.long)
    for i, (c, suffix) in enumerate(zip(cached, suffixes)):
        start = width_new - len(suffix)
        ids[i, start:] = torch.tensor(suffix, dtype=torch.long)
        positions[i, start:] = torch.arange(c, c + len(suffix))
        mask[i, width_cached - c:width_cached] = 1
        mask[i, width_cached + start:] = 1
    if width_cached:
        template = next(r.prefix for r in rows if r.prefix).layers
        layers = []
        for layer, (k0, v0) in enumerate(template):
            keys = k0.new_zeros((len(rows), k0.shape[0], width_cached, k0.shape[-1]))
            values = v0.new_zeros((len(rows), v0.shape[0], width_cached, v0.shape[-1]))
            for i, (row, c) in enumerate(zip(rows, cached)):
                if c:
                    keys[i, :, width_cached - c:] = row.prefix.layers[layer][0][:, :c]
                    values[i, :, width_cached - c:] = row.prefix.layers[layer][1][:, :c]
            layers.append((keys, values))
        cache = _reserved_cache(room + width_new, layers)
    else:
        cache = _reserved_cache(room, config=model.config)
    names = [r.adapter for r in rows] if use_adapters else None
    batch = _Batch(cache, mask, positions[:, -1].clone(), list(range(len(rows))), names, cache_kwarg(model))
    return batch, ids, positions


def _forward(model: Any, batch: _Batch, ids: Any, positions: Any) -> Any:
    """Logits of the last position of every row in the batch."""
    return forward_logits(model, batch, ids, positions)[:, -1, :]


def forward_logits(model: Any, batch: _Batch, ids: Any, positions: Any, keep: int = 1) -> Any:
    """Read ``ids`` (at ``positions``) into ``batch``'s cache; returns the float logits of every row's
    last ``keep`` positions, ``[rows, keep, vocab]``."""
    import torch

    kwargs: dict[str, Any] = {"adapter_names": batch.adapter_names} if batch.adapter_names is not None else {}
    with torch.inference_mode():
        kwargs[batch.cache_kwarg] = batch.cache
        out = model(input_ids=ids, attention_mask=batch.mask, position_ids=positions, use_cache=True,
                    logits_to_keep=keep, **kwargs)
    batch.cache = getattr(out, batch.cache_kwarg)
    return out.logits[:, -keep:, :].float()


def _generator(sampling: SamplingParams) -> Any:
    """A random generator seeded with the request's seed (None: torch's global one)."""
    import torch

    if sampling.greedy or sampling.seed is None:
        return None
    return torch.Generator().manual_seed(int(sampling.seed))


# Nucleus sampling looks among the most likely tokens first: sorting a whole vocabulary row costs
# milliseconds, and with any usual temperature the nucleus lies within the top few hundred tokens.
CANDIDATES = 512


def _choose(logits: Any, samplings: list[SamplingParams], generators: list[Any]) -> list[int]:
    """The next token of every row: argmax for greedy rows, nucleus sampling for the others.

    A sampled row draws from its top ``CANDIDATES`` tokens when they hold its whole nucleus (the
    same distribution as sorting the full vocabulary) and from the full row otherwise.
    """
    import torch

    chosen = logits.argmax(dim=-1).tolist()
    sampled = [slot for slot, s in enumerate(samplings) if not s.greedy]
    if not sampled:
        return chosen
    index = torch.tensor(sampled, dtype=torch.long)
    temperatures = torch.tensor([samplings[slot].temperature for slot in sampled], dtype=logits.dtype)
    scaled = logits[index] / temperatures[:, None]
    log_norm = torch.logsumexp(scaled, dim=-1, keepdim=True)
    top_scores, top_ids = scaled.topk(min(CANDIDATES, scaled.shape[-1]), dim=-1)
    top_probs = torch.exp(top_scores - log_norm)
    before = top_probs.cumsum(dim=-1) - top_probs  # mass of the more likely tokens
    for row, slot in enumerate(sampled):
        s, generator = samplings[slot], generators[slot]
        if s.top_p < 1.0 and float(before[row, -1] + top_probs[row, -1]) >= s.top_p:
            probs = top_probs[row].masked_fill(before[row] >= s.top_p, 0.0)  # the top token always stays
            chosen[slot] = int(top_ids[row, torch.multinomial(probs, 1, generator=generator)])
        else:
            probs = torch.exp(scaled[row] - log_norm[row])
            if s.top_p < 1.0:
                ordered, order = probs.sort(descending=True)
                probs = torch.zeros_like(probs).scatter_(0, order, ordered.masked_fill(
                    ordered.cumsum(0) - ordered >= s.top_p, 0.0))
            chosen[slot] = int(torch.multinomial(probs, 1, generator=generator))
    return chosen


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
