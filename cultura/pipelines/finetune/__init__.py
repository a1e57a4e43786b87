"""Stage 3, ``cultura finetune``: SFT sets -> one LoRA adapter per culture or continent.

In: a refinement folder (``DIR/sft/<culture>.jsonl``, ``--per culture``) or a Palette dataset
(``DIR/palette.parquet``, ``--per continent``). Out: ``OUT/<name>/`` (PEFT adapter folders,
safetensors) and ``OUT/registry.json`` (what each adapter was trained on and how it did).

Modules: :mod:`.run` plans the adapters and runs each as a Ray Train job; :mod:`.lora_train` is the
training loop inside a worker; :mod:`.data` reads, checks and tokenises the SFT sets.
"""

from cultura.pipelines.finetune.run import finetune

__all__ = ["finetune"]
