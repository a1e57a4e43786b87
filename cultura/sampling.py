"""Sampling settings and their limits, owned here: the config, the engines and the HTTP API read
the same bounds, so a value one of them accepts the others accept too."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cultura.errors import ConfigError, CulturaError
from cultura.language import language_code

SEED_RANGE = (-(2**63), 2**63 - 1)  # a signed 64-bit integer: what torch, vLLM and OpenAI clients take
MAX_REPETITION_PENALTY = 2.0  # beyond this the penalty garbles answers rather than guarding them
MAX_TEMPERATURE = 2.0  # OpenAI's bound; hotter sampling from a small model is noise
MAX_TOKENS = 8192  # the most one completion may ask for; the context window is checked per request
MAX_NO_REPEAT_NGRAM = 64
MAX_LANGUAGE_CANDIDATES = 16


def sampling_problem(sampling: Any) -> str | None:
    """What is wrong with a sampling value (``max_tokens``, ``temperature``, ``top_p``, ``seed``,
    ``stop``, ``repetition_penalty``, ``no_repeat_ngram_size``, ``language``, ``language_candidates``),
    or None. Checked again by the engines: a pickled object skips
    its constructor."""
    max_tokens, temperature, top_p, seed = sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.seed
    if not _is_int(max_tokens) or not 1 <= max_tokens <= MAX_TOKENS:
        return f"sampling.max_tokens must be an integer in [1, {MAX_TOKENS}], got {max_tokens!r}"
    if not _is_real(temperature) or not 0 <= temperature <= MAX_TEMPERATURE:
        return f"sampling.temperature must be in [0, {MAX_TEMPERATURE:g}], got {temperature!r}"
    if not _is_real(top_p) or not 0 < top_p <= 1:
        return f"sampling.top_p must be in (0, 1], got {top_p!r}"
    if seed is not None and (not _is_int(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]):
        return f"sampling.seed must be a 64-bit signed integer, got {str(seed)[:40]}"
    if not isinstance(sampling.stop, (tuple, list)) or not all(isinstance(s, str) and s for s in sampling.stop):
        return "sampling.stop must be non-empty strings"
    penalty = sampling.repetition_penalty
    if not _is_real(penalty) or not 0 < penalty <= MAX_REPETITION_PENALTY:
        return f"sampling.repetition_penalty must be in (0, {MAX_REPETITION_PENALTY:g}], got {penalty!r}"
    size = sampling.no_repeat_ngram_size
    if not _is_int(size) or not 0 <= size <= MAX_NO_REPEAT_NGRAM:
        return f"sampling.no_repeat_ngram_size must be an integer in [0, {MAX_NO_REPEAT_NGRAM}], got {size!r}"
    candidates = sampling.language_candidates
    if not _is_int(candidates) or not 1 <= candidates <= MAX_LANGUAGE_CANDIDATES:
        return f"sampling.language_candidates must be an integer in [1, {MAX_LANGUAGE_CANDIDATES}], got {candidates!r}"
    if sampling.language is not None:
        try:
            language_code(str(sampling.language))
        except CulturaError as exc:
            return f"sampling.language must name a known language: {exc}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion. ``temperature == 0`` means greedy decoding.

    ``repetition_penalty`` is the repetition guard, as vLLM and transformers define it: the logit of
    every token already in the prompt or the answer is divided by it (multiplied when negative)
    before sampling; 1.0 is off, about 1.1 keeps a small model's answers from looping.
    ``no_repeat_ngram_size`` n > 0 bans every token that would repeat an n-token sequence of the
    answer (transformers' ``no_repeat_ngram_size``, over the answer only); 0 is off.
    ``language`` (a name or ISO 639 code; None: any) is the language the answer must be in: an
    answer the detector places in another language is replaced by the best of
    ``language_candidates - 1`` sampled ones (:mod:`cultura.engines.rerank`).
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    language: str | None = None
    language_candidates: int = 1

    def __post_init__(self) -> None:
        problem = sampling_problem(self)
        if problem:
            raise ConfigError(problem)

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for Arrow rows and JSON)."""
        return asdict(self) | {"stop": list(self.stop)}
