"""Pre-packed oneDNN weights for the CPU engine's linear layers.

A plain float32 ``F.linear`` on this kind of CPU repacks the whole weight matrix on every call when
more than one row comes in, so a decode step for 2-3 sequences costs two to three times one
sequence's, and batching small numbers of requests (three Palette drafts, a few dialogues) buys
nothing. Packing each weight once into oneDNN's blocked layout makes a step for 1-16 rows cost
about the same as for one (measured on a 2-core EPYC: a 1536x576 layer at 2 rows 250 -> 100 us,
3 rows 374 -> 105 us; SmolLM2-135M greedy decode at batch 3 16.6 -> 33.9 tokens/s, with identical
tokens). See ``bench/engines.py --packed both``.

The layers stay ``nn.Linear`` (peft wraps them as usual and LoRA runs on top); only their
``forward`` is replaced, and it falls back to ``F.linear`` whenever autograd is recording, so a
packed model still trains correctly. The packed copy is not updated if the weights change later.
"""

from __future__ import annotations

import types
from typing import Any

# Rows the packed layout is tuned for; 16 measured as fast as 1-4 for 1-3 rows and best at 8-16.
PACK_BATCH_HINT = 16


def can_pack(module: Any) -> bool:
    """Whether ``module`` is a float32 CPU ``nn.Linear`` that oneDNN can pack on this torch build."""
    import torch

    return (isinstance(module, torch.nn.Linear) and torch.backends.mkldnn.is_available()
            and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32)


def _packed_forward(self: Any, x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
        return F.linear(x, self.weight, self.bias)
    return torch.ops.mkldnn._linear_pointwise(x, self._cultura_packed_weight, self.bias, "none", [], "")


def pack_linear_layers(model: Any) -> int:
    """Give every packable linear layer of ``model`` a packed weight and the packed forward.

    Returns how many layers were packed (0 where the build or dtype does not allow it).
    """
    import torch

    packed = 0
    with torch.no_grad():
        for module in model.modules():
            if can_pack(module) and not hasattr(module, "_cultura_packed_weight"):
                module._cultura_packed_weight = torch.ops.mkldnn._reorder_linear_weight(
                    module.weight.detach(), PACK_BATCH_HINT)
                module.forward = types.MethodType(_packed_forward, module)
                packed += 1
    return packed
