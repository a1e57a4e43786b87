"""Cultural MoErges: continent LoRA adapters merged with the gate's weights into one adapter.

peft's ``add_weighted_adapter(..., combination_type="cat")`` stacks the adapters' low-rank factors so
the merged update is exactly the weighted sum of the adapters' updates:
``B_m A_m = sum_i w_i * scaling_i * B_i A_i`` (rank = sum of ranks, scaling 1). Merged adapters are
cached on disk by (base model, adapter folders and their weights files, weights rounded to a step),
so a repeated weight vector reuses the folder and the engine's already loaded adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from cultura.errors import CulturaError
from cultura.models import resolve_model

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

    Written to a temporary folder and renamed into place, so a crash never leaves half an adapter;
    an ``out`` that already exists is returned as it is. Runs on the CPU (loads the base model).
    """
    out = Path(out)
    if (out / "adapter_model.safetensors").is_file():
        return out
    names = [n for n in sorted(weights) if weights[n] > 0]
    if not names:
        raise CulturaError("nothing to merge: every weight is 0")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(base_model), dtype=torch.float32, use_safetensors=True)
    safe = {n: f"a{i}" for i, n in enumerate(names)}  # peft adapter names (continent names are fine too)
    model = PeftModel.from_pretrained(base, str(folders[names[0]]), adapter_name=safe[names[0]])
    for name in names[1:]:
        model.load_adapter(str(folders[name]), adapter_name=safe[name])
    try:
        model.add_weighted_adapter([safe[n] for n in names], [float(weights[n]) for n in names],
                                   adapter_name=MERGED, combination_type="cat")
    except (ValueError, RuntimeError) as exc:
        raise CulturaError(f"cannot merge the continent adapters {', '.join(names)}: {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), selected_adapters=[MERGED])
    saved = tmp / MERGED if (tmp / MERGED).is_dir() else tmp
    (saved / "cultura_merge.json").write_text(json.dumps(
        {"base_model": base_model, "adapters": {n: str(folders[n]) for n in names},
         "weights": {n: float(weights[n]) for n in names}, "combination": "cat"}, indent=2) + "\n", encoding="utf-8")
    try:
        os.replace(saved, out)
    except OSError:
        if not (out / "adapter_model.safetensors").is_file():  # not a concurrent merge of the same key
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return out


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
