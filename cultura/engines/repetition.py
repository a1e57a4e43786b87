"""The repetition guards of the decode loop: a repetition penalty and a no-repeat n-gram ban per row.

The penalty follows vLLM's ``repetition_penalty`` (and transformers' ``RepetitionPenaltyLogitsProcessor``)
exactly, so both engines answer alike: every token a row has seen, in its prompt or in its answer
so far, has its logit divided by the penalty when positive and multiplied by it when negative,
before temperature and top-p. A penalty of 1.0 leaves the row untouched.

Small models fall into loops under greedy decoding ("I am a Muslim, and I am a Muslim. I am a
Muslim, ..."); a penalty of about 1.1 breaks them without pushing the answer off its subject.
It does not break a loop of a short phrase whose tokens are also common ("Inhale a sua vida!" four
times): the n-gram ban does. With ``no_repeat_ngram_size`` n, a token that would complete an n-gram
of the answer already said is banned (transformers' ``no_repeat_ngram_size``, counted over the
answer only, so the answer may still quote the question). :func:`repeated_ngram_bans` is the rule;
the transformers engine and the vLLM engine's logits processor both apply it.
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


def repeated_ngram_bans(answer: Sequence[int], size: int) -> list[int]:
    """The tokens that would complete an n-gram (``size`` tokens) already in ``answer``: those that
    followed an earlier occurrence of its last ``size - 1`` tokens. Empty when ``size`` is 0 or the
    answer is shorter than ``size - 1`` tokens."""
    if size <= 0 or len(answer) < size - 1:
        return []
    if size == 1:
        return sorted(set(answer))
    tail = tuple(answer[len(answer) - size + 1:])
    return sorted({answer[i + size - 1] for i in range(len(answer) - size + 1)
                   if tuple(answer[i:i + size - 1]) == tail})


def ban_repeated_ngrams(logits: Any, rows: Sequence[int], answers: Sequence[Sequence[int]],
                        sizes: Sequence[int]) -> Any:
    """``logits`` (slot s holds row ``rows[s]``) with :func:`repeated_ngram_bans` of each row's
    answer so far (``answers[i]``, n-gram size ``sizes[i]``) set to minus infinity."""
    slots, tokens = [], []
    for slot, row in enumerate(rows):
        for token in repeated_ngram_bans(answers[row], sizes[row]):
            slots.append(slot)
            tokens.append(token)
    if not slots:
        return logits
    import torch

    return logits.index_put((torch.tensor(slots), torch.tensor(tokens)), torch.tensor(float("-inf"), dtype=logits.dtype))


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
