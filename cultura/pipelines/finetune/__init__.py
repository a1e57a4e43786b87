"""Stage 3, ``cultura finetune``: SFT sets -> one LoRA adapter per culture or continent.

In: a refinement folder (``DIR/sft/<culture>.jsonl``, ``--per culture``) or a Palette dataset
(``DIR/palette.parquet``, ``--per continent``). Out: ``OUT/<name>/`` (PEFT adapter folders,
safetensors) and ``OUT/registry.json`` (what each adapter was trained on and how it did).

Modules: :mod:`.data` reads, checks and tokenises the SFT sets; :mod:`.plan` holds the presets and
checks and plans the adapters before any worker starts; :mod:`.train` runs one adapter as a Ray Train
job (the worker function and its callbacks) and :mod:`.lora_train` is the training loop inside a
worker; :mod:`.export` copies the best checkpoint into place and writes the cards; :mod:`.progress`
shows the runs on the driver; :mod:`.run` runs them all, as many at once as the cluster allows.
"""

from cultura.pipelines.finetune.run import finetune

__all__ = ["finetune"]
