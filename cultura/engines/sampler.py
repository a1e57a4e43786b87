"""The transformers engine's next-token choice: argmax for greedy rows, nucleus sampling (over the
top candidates when they hold the nucleus) for the others, each row with its own seeded generator so
a seeded request gives the same answer whatever it is batched with."""

from __future__ import annotations

from typing import Any

from cultura.sampling import SamplingParams


def row_generator(sampling: SamplingParams) -> Any:
    """A random generator seeded with the request's seed (None: torch's global one)."""
    import torch

    if sampling.greedy or sampling.seed is None:
        return None
    return torch.Generator().manual_seed(int(sampling.seed))


# Nucleus sampling looks among the most likely tokens first: sorting a whole vocabulary row costs
# milliseconds, and with any usual temperature the nucleus lies within the top few hundred tokens.
CANDIDATES = 512


def choose_tokens(logits: Any, samplings: list[SamplingParams], generators: list[Any]) -> list[int]:
    """The next token of every row: argmax for greedy rows, nucleus sampling for the others.

    A sampled row draws from its top ``CANDIDATES`` tokens when they hold its whole nucleus (the
    same distribution as sorting the full vocabulary) and from the full row otherwise.
    """
    import torch

    chosen = logits.argmax(dim=-1).tolist()
    sampled = [slot for slot, s in enumerate(samplings) if not s.greedy]
    if not sampled:
        return chosen
    index = torch.tensor(sampled, dtype=torch.long)
    temperatures = torch.tensor([samplings[slot].temperature for slot in sampled], dtype=logits.dtype)
    scaled = logits[index] / temperatures[:, None]
    log_norm = torch.logsumexp(scaled, dim=-1, keepdim=True)
    top_scores, top_ids = scaled.topk(min(CANDIDATES, scaled.shape[-1]), dim=-1)
    top_probs = torch.exp(top_scores - log_norm)
    before = top_probs.cumsum(dim=-1) - top_probs  # mass of the more likely tokens
    for row, slot in enumerate(sampled):
        s, generator = samplings[slot], generators[slot]
        if s.top_p < 1.0 and float(before[row, -1] + top_probs[row, -1]) >= s.top_p:
            probs = top_probs[row].masked_fill(before[row] >= s.top_p, 0.0)  # the top token always stays
            chosen[slot] = int(top_ids[row, torch.multinomial(probs, 1, generator=generator)])
        else:
            probs = torch.exp(scaled[row] - log_norm[row])
            if s.top_p < 1.0:
                ordered, order = probs.sort(descending=True)
                probs = torch.zeros_like(probs).scatter_(0, order, ordered.masked_fill(
                    ordered.cumsum(0) - ordered >= s.top_p, 0.0))
            chosen[slot] = int(torch.multinomial(probs, 1, generator=generator))
    return chosen
