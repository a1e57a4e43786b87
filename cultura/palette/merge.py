"""Cultural MoErges: continent LoRA adapters merged with the gate's weights into one adapter.

The adapters' low-rank factors are stacked (as peft's ``add_weighted_adapter(..., combination_type="cat")``
does, but in float32 and from the files alone) so the merged update is exactly the weighted sum of the
adapters' updates:
``B_m A_m = sum_i w_i * scaling_i * B_i A_i`` (rank = sum of ranks, scaling 1). Merged adapters are
cached on disk by (base model, adapter folders and their weights files, weights rounded to a step),
so a repeated weight vector reuses the folder and the engine's already loaded adapter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cultura.errors import CulturaError

MERGED = "merged"


def round_weights(weights: Mapping[str, float], step: float) -> dict[str, float]:
    """Weights rounded to multiples of ``step``, zeros dropped, renormalised to sum to 1."""
    rounded = {k: round(float(w) / step) * step for k, w in weights.items()}
    rounded = {k: w for k, w in rounded.items() if w > 0}
    if not rounded:  # every weight below half a step: keep the heaviest
        top = max(weights, key=lambda k: weights[k])
        rounded = {top: 1.0}
    total = sum(rounded.values())
    return {k: round(w / total, 6) for k, w in sorted(rounded.items())}


def merge_key(base_model: str, folders: Mapping[str, str], weights: Mapping[str, float]) -> str:
    """A stable name for a merged adapter: a hash of the base model, the adapters (folder, size and
    modification time of their weights) and the weights."""
    parts = []
    for name in sorted(weights):
        weights_file = Path(folders[name]) / "adapter_model.safetensors"
        stat = weights_file.stat()
        parts.append([name, str(Path(folders[name]).resolve()), stat.st_size, stat.st_mtime_ns, weights[name]])
    digest = hashlib.sha1(json.dumps([base_model, parts]).encode("utf-8")).hexdigest()[:16]
    return f"{MERGED}-{digest}"


def merge_adapters(base_model: str, folders: Mapping[str, str], weights: Mapping[str, float], out: str | Path) -> Path:
    """Merge the adapters ``folders[name]`` with ``weights[name]`` into a PEFT folder ``out``.

    The merge reads the adapters' factors only, in float32, so it loads no base model (whatever its
    size or ``engine.dtype``) and is exact: the same concatenation as peft's ``add_weighted_adapter(...,
    combination_type="cat")``, which builds the merged factors in the base's dtype (bfloat16 rounded
    the merged update by ~1e-4 on the default model). Written to a temporary folder and renamed into
    place, so a crash never leaves half an adapter; an ``out`` that already exists is returned as it is.
    """
    out = Path(out)
    if (out / "adapter_model.safetensors").is_file():
        return out
    names = [n for n in sorted(weights) if weights[n] > 0]
    if not names:
        raise CulturaError("nothing to merge: every weight is 0")
    from safetensors.torch import save_file

    config, tensors = concatenated_lora([_read_lora(Path(folders[n])) for n in names], [float(weights[n]) for n in names])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(tensors, str(tmp / "adapter_model.safetensors"))
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (tmp / "cultura_merge.json").write_text(json.dumps(
        {"base_model": base_model, "adapters": {n: str(folders[n]) for n in names},
         "weights": {n: float(weights[n]) for n in names}, "combination": "cat"}, indent=2) + "\n", encoding="utf-8")
    try:
        os.replace(tmp, out)
    except OSError:
        if not (out / "adapter_model.safetensors").is_file():  # not a concurrent merge of the same key
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _read_lora(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter_config.json, float32 tensors) of a PEFT LoRA folder, refusing what a concatenation
    cannot merge exactly (DoRA, per-module ranks or alphas, extra trained modules or biases)."""
    from safetensors.torch import load_file

    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "adapter_model.safetensors"))
    except (OSError, ValueError) as exc:
        raise CulturaError(f"{folder}: not a readable PEFT adapter folder ({exc})") from None
    unmergeable = {"peft_type": config.get("peft_type", "LORA") != "LORA", "use_dora": bool(config.get("use_dora")),
                   "rank_pattern": bool(config.get("rank_pattern")), "alpha_pattern": bool(config.get("alpha_pattern")),
                   "modules_to_save": bool(config.get("modules_to_save")), "bias": config.get("bias", "none") != "none"}
    if any(unmergeable.values()) or any(not k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors):
        found = [k for k, bad in unmergeable.items() if bad] or ["tensors other than lora_A / lora_B weights"]
        raise CulturaError(f"{folder}: cannot merge this adapter by concatenation ({', '.join(found)})")
    return config, {k: v.float() for k, v in tensors.items()}


def concatenated_lora(adapters: Sequence[tuple[dict[str, Any], dict[str, Any]]], weights: Sequence[float]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, tensors) of the adapter whose update is ``sum_i weights[i] * scaling_i * B_i A_i``:
    each module's factors stacked along the rank (``A`` rows scaled by weight and scaling, ``B``
    columns as they are), zeros where an adapter has no such module, rank = alpha = sum of ranks."""
    import torch

    ranks = [int(config["r"]) for config, _ in adapters]
    scalings = [float(config["lora_alpha"]) / (math.sqrt(r) if config.get("use_rslora") else r)
                for (config, _), r in zip(adapters, ranks)]
    total = sum(ranks)
    offsets = [sum(ranks[:i]) for i in range(len(ranks))]
    modules = sorted({k.removesuffix(".lora_A.weight") for _, tensors in adapters for k in tensors
                      if k.endswith(".lora_A.weight")})
    merged: dict[str, Any] = {}
    for module in modules:
        a_key, b_key = f"{module}.lora_A.weight", f"{module}.lora_B.weight"
        shapes = next((t[a_key].shape[1], t[b_key].shape[0]) for _, t in adapters if a_key in t)
        a, b = torch.zeros(total, shapes[0]), torch.zeros(shapes[1], total)
        for (_, tensors), rank, offset, weight, scaling in zip(adapters, ranks, offsets, weights, scalings):
            if a_key in tensors:
                a[offset:offset + rank] = tensors[a_key] * (weight * scaling)
                b[:, offset:offset + rank] = tensors[b_key]
        merged[a_key], merged[b_key] = a.contiguous(), b.contiguous()
    targets = sorted({m for config, _ in adapters for m in _listed(config.get("target_modules"))})
    config = {**adapters[0][0], "r": total, "lora_alpha": total, "use_rslora": False, "target_modules": targets}
    return config, merged


def _listed(targets: Any) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets or ())


def plan_merge(base_model: str, folders: Mapping[str, str], weights: Mapping[str, float], step: float,
               cache: str | Path) -> tuple[Path, dict[str, float]]:
    """Where the merged adapter for ``weights`` (rounded to ``step``) lies in ``cache``, and the weights
    it merges. Only continents with an adapter folder take part; nothing is merged here."""
    usable = {k: w for k, w in weights.items() if w > 0 and k in folders}
    if not usable:
        raise CulturaError("weighted-merge needs adapters for the selected continents; none of "
                           f"{', '.join(k for k, w in weights.items() if w > 0)} has one (register continent "
                           "adapters with `cultura finetune`, or use --blend aggregate)")
    rounded = round_weights(usable, step)
    return Path(cache) / merge_key(base_model, folders, rounded), rounded
