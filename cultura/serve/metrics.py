"""The Serve app's custom metrics (beside Serve's own request, latency and replica metrics).

Exported through Ray's Prometheus endpoint as ``ray_cultura_serve_*`` and shown on the dashboard's
metrics page: the gate weight each continent gets, each stage's latency, drafts skipped (not chosen
by the gate) or missing (failed or timed out), requests by model and status, and the answers' time
to first token and time per output token as the ingress sees them.

Time to first token here runs from the request reaching the ingress to its answer's first token: a
palette answer's includes the gate, the drafts and the Meta Agent's queue. It is the answer's whole
latency less the time its engine spent after the first token (the engines time their tokens, see
:mod:`cultura.engines.latency`). A streamed response sends the answer once it is complete, so a
streaming client's first content chunk comes at the whole latency, not at this time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cultura.data.cultures import get_culture
from cultura.engines.latency import FIRST_TOKEN_BOUNDARIES, NO_ADAPTER, PER_TOKEN_BOUNDARIES, short_name
from cultura.metrics import Metrics, counter, histogram

WEIGHT_BOUNDARIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STAGE_BOUNDARIES = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
ANSWER_TAGS = ("model", "adapter", "continent")

SERVE_METRICS = Metrics([
    histogram("serve_gate_weight", "Cultural MoE gate weight per continent (0 when not chosen)",
              ("continent",), WEIGHT_BOUNDARIES),
    histogram("serve_stage_seconds", "Latency of each stage: gate, drafts, draft (per continent), aggregate, "
              "generate, total", ("stage", "continent"), STAGE_BOUNDARIES),
    counter("serve_drafts_skipped", "Continent drafts not used: not_selected by the gate, error, timeout",
            ("continent", "reason")),
    counter("serve_requests", "Requests by model kind and HTTP status", ("model", "status")),
    counter("serve_tokens", "Tokens processed by model kind (prompt and completion)", ("model", "kind")),
    histogram("serve_time_to_first_token_seconds", "Seconds from a request reaching the ingress to its "
              "answer's first token (a palette answer's gate and drafts included)", ANSWER_TAGS,
              FIRST_TOKEN_BOUNDARIES),
    histogram("serve_time_per_output_token_seconds", "Mean seconds per token of an answer after its first",
              ANSWER_TAGS, PER_TOKEN_BOUNDARIES),
])


def answer_tags(ref: Any, adapters: Mapping[str, str], selected: str | None = None) -> dict[str, str]:
    """The ``model`` (kind), ``adapter`` and ``continent`` tags of an answer to the model ``ref``.

    ``adapters`` maps model ids (``continent/Europe``, ``culture/korean``) to their adapter folders.
    A palette answer is the Meta Agent's (no adapter, every chosen continent: ``all``), or with
    ``blend: select`` the draft of the ``selected`` continent, whose adapter it carries.
    """
    if ref.kind == "palette":
        adapter = adapters.get(f"continent/{selected}") if selected else None
        continent = "all"
    elif ref.kind == "continent":
        adapter, continent = adapters.get(ref.id), ref.target
    elif ref.kind == "culture":
        adapter, continent = adapters.get(ref.id), get_culture(ref.target).continent
    else:
        adapter, continent = None, "none"
    return {"model": ref.kind, "adapter": short_name(adapter) if adapter else NO_ADAPTER, "continent": continent}


def record_answer_latency(total_s: float, final: Any, tags: Mapping[str, str]) -> tuple[float | None, float | None]:
    """Record an answer's time to first token (``total_s`` less what its engine spent after the
    first token of ``final``, the completion the answer's text came from) and time per output
    token; returns both (None where ``final`` was not timed)."""
    if final is None or final.after_first_s is None:
        return None, None
    first_token_s = max(0.0, total_s - final.after_first_s)
    SERVE_METRICS.observe("serve_time_to_first_token_seconds", first_token_s, **tags)
    SERVE_METRICS.observe("serve_time_per_output_token_seconds", final.per_token_s, **tags)
    return first_token_s, final.per_token_s
