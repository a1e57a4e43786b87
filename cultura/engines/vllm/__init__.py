"""The vLLM engine (:mod:`.engine`), its CPU settings (:mod:`.cpu`), LoRA folders as vLLM takes them
(:mod:`.lora`) and the no-repeat n-gram logits processor (:mod:`.ngram`). Importing this package does
not import vllm: only building an engine does."""
