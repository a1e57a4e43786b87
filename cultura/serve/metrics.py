"""The Serve app's custom metrics (beside Serve's own request, latency and replica metrics).

Exported through Ray's Prometheus endpoint as ``ray_cultura_serve_*`` and shown on the dashboard's
metrics page: the gate weight each continent gets, each stage's latency, drafts skipped (not chosen
by the gate) or missing (failed or timed out), and requests by model and status.
"""

from __future__ import annotations

from cultura.metrics import Metrics, counter, histogram

WEIGHT_BOUNDARIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STAGE_BOUNDARIES = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

SERVE_METRICS = Metrics([
    histogram("serve_gate_weight", "Cultural MoE gate weight per continent (0 when not chosen)",
              ("continent",), WEIGHT_BOUNDARIES),
    histogram("serve_stage_seconds", "Latency of each stage: gate, drafts, draft (per continent), aggregate, "
              "generate, total", ("stage", "continent"), STAGE_BOUNDARIES),
    counter("serve_drafts_skipped", "Continent drafts not used: not_selected by the gate, error, timeout",
            ("continent", "reason")),
    counter("serve_requests", "Requests by model kind and HTTP status", ("model", "status")),
    counter("serve_tokens", "Tokens processed by model kind (prompt and completion)", ("model", "kind")),
])
