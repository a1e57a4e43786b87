"""The no-repeat n-gram ban as a vLLM logits processor (vLLM's SamplingParams has no such field).

vLLM loads it by name (``engine args logits_processors=[PROCESSOR]``) in its engine process; a
request asks for it with ``SamplingParams.extra_args={"no_repeat_ngram_size": n}``. It applies the
rule the transformers engine applies (:func:`cultura.engines.repetition.repeated_ngram_bans`), so
both engines answer alike. This module imports vllm: only the vLLM engine imports it.
"""

from __future__ import annotations

from typing import Any

from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from cultura.engines.repetition import repeated_ngram_bans

PROCESSOR = "cultura.engines.vllm.ngram:NoRepeatNGram"
FIELD = "no_repeat_ngram_size"


class NoRepeatNGram(AdapterLogitsProcessor):
    """Sets the logits of tokens that would repeat an n-gram of the answer to minus infinity."""

    def is_argmax_invariant(self) -> bool:
        """False: banning a token changes the greedy choice."""
        return False

    def new_req_logits_processor(self, params: Any) -> Any:
        """The per-request processor for ``params.extra_args[FIELD]`` (None when it is 0 or absent)."""
        size = int((params.extra_args or {}).get(FIELD, 0) or 0)
        if size <= 0:
            return None

        def ban(output_ids: list[int], logits: Any) -> Any:
            banned = repeated_ngram_bans(output_ids, size)
            if banned:
                logits[banned] = float("-inf")
            return logits

        return ban
