"""Which continent responses a Palette row keeps: per continent the sample nearest its Hofstede centroid,
when near enough, with the other continents' kept responses as the rejected ones."""

from __future__ import annotations

from typing import Any

from cultura.data.hofstede import CONTINENTS


def select_rows(query: str, candidates: dict[str, list[dict[str, Any]]], max_distance: float,
                extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Hofstede refinement for one query: per continent the closest rated sample within
    ``max_distance`` is chosen; each chosen answer is rejected for every other continent.

    ``candidates[continent]`` holds samples ``{response, judge_text, ratings, valid_mass, distance}``. Returns one
    :func:`outcome_schema` row per continent with candidates.
    """
    chosen: dict[str, dict[str, Any]] = {}
    status: dict[str, str] = {}
    for continent in CONTINENTS:
        if not candidates.get(continent):
            continue
        rated = [c for c in candidates[continent] if c["distance"] is not None]
        best = min(rated, key=lambda c: c["distance"]) if rated else None
        if best is None:
            status[continent] = "unrated"
        elif best["distance"] > max_distance:
            status[continent] = "far"
        else:
            chosen[continent] = best
            status[continent] = "kept"
    if len(chosen) == 1:
        status[next(iter(chosen))] = "alone"
    rows = []
    for continent, state in status.items():
        cands = candidates[continent]
        read = sum(v is not None for c in cands for v in c["ratings"].values())
        row = extra | {"query": query, "continent": continent, "candidates": cands, "status": state,
                       "ratings_read": read, "rejected_response": [], "rejected_continents": []}
        if continent in chosen:
            best = chosen[continent]
            others = [c for c in chosen if c != continent]
            row |= {"response": best["response"], "rejected_response": [chosen[o]["response"] for o in others],
                    "rejected_continents": others, "judge_ratings": best["ratings"],
                    "judge_text": best["judge_text"], "judge_valid_mass": best.get("valid_mass"),
                    "hofstede_distance": best["distance"]}
        rows.append(row)
    return rows
