"""Cultural Palette: the Cultural MoE gate, the Meta Agent's prompts, and the Palette orchestrator.

Everything here imports without torch or Ray; those load when a Palette starts its actors.
"""

from __future__ import annotations

from cultura.palette.gate import CulturalGate, GateDecision
from cultura.palette.palette import Palette
from cultura.palette.stages import PaletteResponse

__all__ = ["CulturalGate", "GateDecision", "Palette", "PaletteResponse"]
