"""8-bit weights for the CPU engine's decode steps of a few rows (``engine.int8_decode_rows``).

At batch 1 a decode step is bound by reading the weights: SmolLM2-135M's linear layers are 538 MB
in float32, and on a 2-core EPYC they took 55 of a step's 97 ms (``bench/engines.py --profile``).
An int8 copy of each weight (one scale per output channel) is a quarter of that, and torch's
``_weight_int8pack_mm`` reads it with bfloat16 activations: the batch-1 step fell to 45 ms (linear
20), while at 16 rows int8 ran at 0.93x the packed float32 step (variant ``int8-any``). So int8
serves decode steps of at most ``limit`` rows; larger steps, prompt reading, option scoring and
training keep the model's own weights, and evaluation numbers do not change.

What int8 changes is the generated text: greedy answers follow the float32 ones for a few dozen
tokens, then may diverge (``bench/engines.py`` prints the agreement). With int8 on, an answer also
depends on whether its step held more rows than the limit, so the engine's "same answer whatever the
batch" holds only within either side of it.

The layers stay ``nn.Linear`` (peft wraps them and LoRA runs on top of the int8 base); their
``forward`` is wrapped and falls back to the float32 forward outside an :func:`int8_weights` block,
whenever autograd records, or when the step has more rows than allowed.
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Iterator
from typing import Any

_STEP = threading.local()  # .rows: the row limit of the decode step running on this thread (0: none)


def can_quantize() -> bool:
    """Whether this torch build has the int8 weight-only matmul on CPU."""
    import torch

    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def quantize_linear_layers(model: Any) -> int:
    """Give every CPU ``nn.Linear`` of ``model`` an int8 copy of its weight (symmetric, one scale per
    output channel) and the forward that uses it inside :func:`int8_weights`; returns how many."""
    import torch

    done = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear) or module.weight.device.type != "cpu" \
                    or hasattr(module, "_cultura_int8"):
                continue
            weight = module.weight.detach().float()
            scales = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12)
            quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            module._cultura_int8 = (quantized, scales.to(torch.bfloat16))
            module._cultura_float_forward = module.forward
            module.forward = types.MethodType(_int8_forward, module)
            done += 1
    return done


@contextlib.contextmanager
def int8_weights(rows: int, limit: int) -> Iterator[None]:
    """Inside the block, this thread's quantized layers use int8 for inputs of at most ``limit`` rows,
    when the step has ``rows`` rows within it (``limit`` 0: never)."""
    previous = getattr(_STEP, "rows", 0)
    _STEP.rows = limit if 0 < rows <= limit else 0
    try:
        yield
    finally:
        _STEP.rows = previous


def _int8_forward(self: Any, x: Any) -> Any:
    import torch

    limit = getattr(_STEP, "rows", 0)
    rows = x.numel() // x.shape[-1]
    if not limit or rows > limit or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
        return self._cultura_float_forward(x)
    quantized, scales = self._cultura_int8
    out = torch.ops.aten._weight_int8pack_mm(x.reshape(rows, x.shape[-1]).to(torch.bfloat16), quantized, scales)
    out = out.to(x.dtype).reshape(*x.shape[:-1], quantized.shape[0])
    return out if self.bias is None else out + self.bias
