"""Forward passes of the transformers engine that decoding and option scoring share: a batch of rows
(their cache, attention mask, positions and adapters), the first pass over prompts resumed from
their cached prefixes, joining batches, and reading tokens into a batch.

:func:`prefill_groups` groups prompts of similar length so a padded forward pass wastes little;
:func:`prompt_batch` lays out one group (a row's cached prefix ends where the cached part ends, its
new tokens end where the batch ends); :func:`forward_logits` reads tokens into the batch's cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cultura.engines.kv_cache import cache_kwarg, reserved_cache
from cultura.engines.prefix_cache import CachedPrefix
from cultura.sampling import SamplingParams


@dataclass
class DecodeRow:
    """One prompt to continue: its token ids, peft adapter name (or None), sampling and cached prefix."""

    ids: list[int]
    sampling: SamplingParams
    adapter: str | None = None
    prefix: CachedPrefix | None = None


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


class Batch:
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


def join_batches(batches: list[Batch], room: int) -> Batch:
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
    return Batch(reserved_cache(room, layers), torch.cat([padded(b.mask, b.mask.shape[1]) for b in batches]),
                  torch.cat([b.positions for b in batches]), [i for b in batches for i in b.rows], names,
                  batches[0].cache_kwarg)


def prompt_batch(model: Any, rows: Sequence[DecodeRow], pad_id: int, use_adapters: bool,
                 room: int) -> tuple[Batch, Any, Any]:
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
        cache = reserved_cache(room + width_new, layers)
    else:
        cache = reserved_cache(room, config=model.config)
    names = [r.adapter for r in rows] if use_adapters else None
    batch = Batch(cache, mask, positions[:, -1].clone(), list(range(len(rows))), names, cache_kwarg(model))
    return batch, ids, positions


def last_logits(model: Any, batch: Batch, ids: Any, positions: Any) -> Any:
    """Logits of the last position of every row in the batch."""
    return forward_logits(model, batch, ids, positions)[:, -1, :]


def forward_logits(model: Any, batch: Batch, ids: Any, positions: Any, keep: int = 1) -> Any:
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
