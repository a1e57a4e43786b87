"""The transformers engine's key/value cache: a transformers ``DynamicCache`` whose layers keep room
for the tokens still to come, so a decode step writes its key/value in place instead of copying the
whole cache (:func:`reserved_cache`), and the name a model's forward gives that argument."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


@functools.cache
def reserved_layer_class() -> type:
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


def reserved_cache(room: int, layers: Sequence[tuple[Any, Any]] | None = None, config: Any = None) -> Any:
    """A transformers cache with ``room`` free positions per row: filled with ``layers`` ((keys,
    values) per layer), or empty as ``config`` lays it out, its plain layers reserving room on their
    first states (other kinds, such as sliding-window layers, stay as transformers made them)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layer_class = reserved_layer_class()
    if layers is not None:
        cache = DynamicCache()
        cache.layers = [layer_class(room, keys, values) for keys, values in layers]
    else:
        cache = DynamicCache(config=config)
        cache.layers = [layer_class(room) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def cache_kwarg(model: Any) -> str:
    """The name ``model``'s forward gives its key/value cache argument."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
