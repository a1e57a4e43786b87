"""Ground-level prompt formats for multiple-choice questions: numbered options, the answer strings
scored for them, the softmax that turns their log-probabilities into a distribution, and a robust
parser for sampled answers.

Option scoring reads the model's distribution from the log-probabilities of the option numbers
("1".."K", one token each in common tokenizers), so prompts number their options. Sampled answers
are parsed by :func:`parse_choice`; an answer it cannot read is re-asked with :func:`reask_messages`
and counted, never replaced by a default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from cultura.errors import CulturaError

ANSWER_INSTRUCTION = "Answer with the number of one option only."
# Survey questions end on an answer cue: measured with the default model on GlobalOpinionQA-format
# items, it moves the probability on the option numbers from about 0.51 to 0.61 (the rest went to
# the first words of an explanation: "The", "I", "To").
SURVEY_INSTRUCTION = ANSWER_INSTRUCTION + "\nAnswer:"
REASK = "Please answer with only the number of one option, from 1 to {k}."
CHOOSE = "Which of the numbered options does your answer choose? " + ANSWER_INSTRUCTION


def numbered_question(text: str, options: Sequence[str], instruction: str = ANSWER_INSTRUCTION) -> str:
    """A question followed by its options numbered from 1 and an instruction to answer by number."""
    lines = [text.strip(), ""]
    lines += [f"{i}. {option}" for i, option in enumerate(options, start=1)]
    return "\n".join(lines + ["", instruction])


def option_numbers(count: int) -> list[str]:
    """The answer strings scored for ``count`` numbered options: "1", "2", ..."""
    return [str(i) for i in range(1, count + 1)]


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Read a sampled answer as a 0-based option index, or None when it is not clear.

    Accepted: one option number, however wrapped ("3", "3.", "Option 3", "I'd say 3 because"),
    or the text of exactly one option ("Strongly agree"). Several different numbers ("2 or 3"), a
    number out of range, or no option at all give None.
    """
    if not text or not text.strip():
        return None
    k = len(options)
    clean = text.strip()
    numbers = [int(m) for m in re.findall(r"(?<![\d.])(\d{1,2})(?![\d]|\.\d)", clean)]
    valid = [n for n in numbers if 1 <= n <= k]
    if valid and len(set(valid)) == 1 and len(numbers) == len(valid):
        return valid[0] - 1
    if numbers:
        return None
    lowered = f" {_words(clean)} "
    hits = [i for i, option in enumerate(options) if f" {_words(option)} " in lowered]
    # "Disagree" is inside "Strongly disagree": keep only options not contained in another hit.
    hits = [i for i in hits if not any(j != i and _words(options[i]) in _words(options[j]) for j in hits)]
    return hits[0] if len(hits) == 1 else None


def choice_messages(question: str, answer: str) -> list[dict[str, str]]:
    """The question, a free-text answer to it, and a request to name the option that answer chooses:
    scoring the option numbers after this reads the answer's choice."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer or "(no answer)"},
            {"role": "user", "content": CHOOSE}]


def reask_messages(messages: Sequence[dict[str, str]], bad_answer: str, k: int) -> list[dict[str, str]]:
    """The conversation extended by the unreadable answer and a request to answer by number only."""
    return [*map(dict, messages), {"role": "assistant", "content": bad_answer or "(no answer)"},
            {"role": "user", "content": REASK.format(k=k)}]


def softmax(logprobs: Sequence[float]) -> list[float]:
    """Normalise option log-probabilities into a distribution over the options (sums to 1)."""
    if not logprobs:
        raise CulturaError("no option log-probabilities to normalise")
    top = max(logprobs)
    if math.isinf(top) and top < 0:
        raise CulturaError("every option has log-probability -inf")
    weights = [math.exp(x - top) for x in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))
