"""The repetition guard of the transformers decode loop: a repetition penalty per row.

The penalty follows vLLM's ``repetition_penalty`` (and transformers' ``RepetitionPenaltyLogitsProcessor``)
exactly, so both engines answer alike: every token a row has seen, in its prompt or in its answer
so far, has its logit divided by the penalty when positive and multiplied by it when negative,
before temperature and top-p. A penalty of 1.0 leaves the row untouched.

Small models fall into loops under greedy decoding ("I am a Muslim, and I am a Muslim. I am a
Muslim, ..."); a penalty of about 1.1 breaks them without pushing the answer off its subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RepetitionGuard:
    """The tokens each penalised row has seen, and the penalty applied to them at every step.

    ``prompts`` are the rows' prompt token ids, ``penalties`` their repetition penalties; rows whose
    penalty is 1.0 cost nothing.
    """

    def __init__(self, prompts: Sequence[Sequence[int]], penalties: Sequence[float]):
        self.guarded = {row: k for k, row in enumerate(i for i, p in enumerate(penalties) if p != 1.0)}
        self.prompts = [list(prompts[row]) for row in self.guarded]
        self.penalties = [float(penalties[row]) for row in self.guarded]
        self.recorded = [0] * len(self.guarded)  # answer tokens already marked as seen, per guarded row
        self.seen: Any = None  # bool [guarded rows, vocabulary], made at the first step

    def penalize(self, logits: Any, rows: Sequence[int], answers: Sequence[Sequence[int]]) -> Any:
        """``logits`` (one row per batch slot; slot s holds row ``rows[s]``) with the penalty applied
        to the tokens each guarded row has seen; ``answers[i]`` is row i's answer so far."""
        import torch

        slots = [s for s, row in enumerate(rows) if row in self.guarded]
        if not slots:
            return logits
        if self.seen is None:
            self.seen = torch.zeros((len(self.guarded), logits.shape[-1]), dtype=torch.bool)
            for k, prompt in enumerate(self.prompts):
                self.seen[k, torch.tensor(prompt, dtype=torch.long)] = True
        for row, k in self.guarded.items():  # mark the answer tokens sampled since the last step
            new = answers[row][self.recorded[k]:]
            if new:
                self.seen[k, torch.tensor(new, dtype=torch.long)] = True
                self.recorded[k] += len(new)
        index = torch.tensor(slots, dtype=torch.long)
        guarded = [self.guarded[rows[s]] for s in slots]
        part = logits[index]
        penalty = torch.tensor([self.penalties[k] for k in guarded], dtype=part.dtype)[:, None]
        penalized = torch.where(part > 0, part / penalty, part * penalty)
        return logits.index_put((index,), torch.where(self.seen[guarded], penalized, part))


LOOP_SPAN_WORDS = 8  # a run of this many words ...
LOOP_REPEATS = 3     # ... said this often is a loop ("three times over"); said twice it may be a restatement


def most_repeated_span(text: str, words: int = LOOP_SPAN_WORDS) -> int:
    """How often the most frequent run of ``words`` consecutive words occurs in ``text`` (0 if shorter)."""
    from collections import Counter

    tokens = text.split()
    spans = Counter(tuple(tokens[i:i + words]) for i in range(len(tokens) - words + 1))
    return max(spans.values(), default=0)


def loops(text: str) -> bool:
    """True when ``text`` says the same ``LOOP_SPAN_WORDS`` words ``LOOP_REPEATS`` times or more."""
    return most_repeated_span(text) >= LOOP_REPEATS
