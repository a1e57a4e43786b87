"""LoRA folders as vLLM takes them: the ranks vLLM accepts, the modules an adapter has weights for,
and the all-zero adapter that stands in for "no adapter" (see :mod:`cultura.engines.vllm.engine`)."""

from __future__ import annotations

import json
from pathlib import Path

from cultura.errors import CulturaError

ZERO_ADAPTER = "__cultura_zero__"  # the all-zero adapter base requests carry once adapters exist
_VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # max_lora_rank values vLLM accepts
NOT_LORA_TARGETS = ("lm_head", "embed_tokens", "wte", "embed_in", "embed_out")


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds adapters of rank ``rank``."""
    for allowed in _VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise CulturaError(f"engine.max_lora_rank {rank} is larger than vLLM supports ({_VLLM_LORA_RANKS[-1]})")


def adapter_modules(folder: Path) -> set[str]:
    """The module names (last name part, e.g. ``q_proj``) a PEFT LoRA folder has weights for."""
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    return {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys if ".lora_A" in k or ".lora_B" in k}


def write_zero_adapter(source: Path, out: Path) -> Path:
    """Write a LoRA adapter into ``out`` with ``source``'s config and shapes but every ``lora_B`` zero.

    Applied to a request it adds exactly nothing, so it stands in for "no adapter" (see the module
    docstring). Only LoRA matrices are kept; ``modules_to_save`` is dropped.
    """
    from safetensors.torch import load_file, save_file

    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    config["modules_to_save"] = None
    weights = load_file(str(source / "adapter_model.safetensors"))
    zero = {}
    for key, tensor in weights.items():
        if "lora_B" in key:
            zero[key] = tensor.new_zeros(tensor.shape).contiguous()
        elif "lora_A" in key:
            zero[key] = tensor.contiguous()
    if not any("lora_B" in k for k in zero):
        raise CulturaError(f"{source}: no LoRA weights found in adapter_model.safetensors")
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(zero, str(out / "adapter_model.safetensors"))
    return out
