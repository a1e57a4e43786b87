"""What ``engine.dtype: auto`` stands for on this machine.

On CPU, bfloat16 pays only where torch's oneDNN has bfloat16 kernels for the CPU (AMX or
AVX512-BF16). Elsewhere it falls back to a slow path: on a 2-core AVX2 EPYC, option scoring ran at
0.17x float32 (``bench/dtype.py``). So ``auto`` is bfloat16 exactly where those kernels exist, float32
otherwise; on a GPU it is bfloat16 where the GPU supports it.
"""

from __future__ import annotations

import functools

AUTO = "auto"


@functools.cache
def cpu_bfloat16() -> tuple[bool, str]:
    """(whether this CPU runs bfloat16 matmuls natively, the reason in words)."""
    import torch

    amx, avx512_bf16 = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    onednn = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    found = [name for name, present in (("AMX", amx), ("AVX512-BF16", avx512_bf16)) if present]
    if found and onednn:
        return True, f"the CPU has {' and '.join(found)} and torch's oneDNN uses them"
    if found:
        return False, f"the CPU has {' and '.join(found)} but torch's oneDNN has no bfloat16 kernels for it"
    return False, f"the CPU has neither AMX nor AVX512-BF16 (torch capability {torch.backends.cpu.get_cpu_capability()})"


def resolve_dtype(setting: str, gpu: bool = False) -> str:
    """The dtype ``setting`` (``engine.dtype``) names: itself, or for ``auto`` bfloat16 where the device
    runs it natively (a GPU that supports it; see :func:`cpu_bfloat16`), float32 otherwise."""
    if setting != AUTO:
        return setting
    if gpu:
        import torch

        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_bfloat16()[0] else "float32"


def dtype_choice(setting: str, gpu: bool = False) -> str:
    """A line saying which dtype ``setting`` gave and, for ``auto``, why."""
    chosen = resolve_dtype(setting, gpu)
    if setting != AUTO:
        return f"dtype {chosen} (engine.dtype)"
    reason = "on the GPU" if gpu else cpu_bfloat16()[1]
    return f"dtype {chosen} (engine.dtype auto: {reason})"
