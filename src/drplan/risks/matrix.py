"""The probability x impact matrix of a plan's risk register.

As in Figure 4 of the Université de Strasbourg Moodle paper: a 4x4 grid, probability
(very low … high) across, impact (low … very high) up, each cell holding the risks that
fall in it. A cell's criticality is the sum of the two ranks (0 … 6):

========  ==========  =======
ranks     level       colour
========  ==========  =======
0-1       low         green
2-3       moderate    yellow
4         high        orange
5-6       critical    red
========  ==========  =======

Risks whose ``triggers_plan`` is true (the event activates the recovery plan) are marked
with ★ (bold in the SVG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drplan.plan import model as m

PROBABILITIES = ("very_low", "low", "medium", "high")
IMPACTS = ("low", "medium", "high", "very_high")
LEVELS = (
    # (highest score, level, colour for the SVG, rich style for the terminal)
    (1, "low", "#8bc34a", "green"),
    (3, "moderate", "#ffeb3b", "yellow"),
    (4, "high", "#ff9800", "dark_orange"),
    (6, "critical", "#e53935", "red"),
)
TRIGGER_MARK = "★"


def label(value: str) -> str:
    return value.replace("_", " ")


def criticality(probability: str, impact: str) -> int:
    return PROBABILITIES.index(probability) + IMPACTS.index(impact)


def level_of(score: int) -> tuple[str, str, str]:
    """(level, hex colour, rich style) of a criticality score."""
    for top, level, colour, style in LEVELS:
        if score <= top:
            return level, colour, style
    raise ValueError(score)


@dataclass
class Cell:
    probability: str
    impact: str
    risks: list[m.Risk] = field(default_factory=list)

    @property
    def score(self) -> int:
        return criticality(self.probability, self.impact)

    @property
    def level(self) -> str:
        return level_of(self.score)[0]

    @property
    def colour(self) -> str:
        return level_of(self.score)[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "impact": self.impact,
            "criticality": self.score,
            "level": self.level,
            "colour": self.colour,
            "count": len(self.risks),
            "risks": [r.id for r in self.risks],
            "triggers_plan": [r.id for r in self.risks if r.triggers_plan],
        }


@dataclass
class Matrix:
    """Cells indexed ``(probability, impact)``, every one of the 16 present."""

    cells: dict[tuple[str, str], Cell]
    risks: list[m.Risk]

    def cell(self, probability: str, impact: str) -> Cell:
        return self.cells[(probability, impact)]

    def to_dict(self) -> dict[str, Any]:
        by_level: dict[str, int] = {lv: 0 for _, lv, _, _ in LEVELS}
        for r in self.risks:
            by_level[level_of(criticality(r.probability, r.impact))[0]] += 1
        return {
            "probabilities": list(PROBABILITIES),
            "impacts": list(IMPACTS),
            "levels": [
                {"level": lv, "max_criticality": top, "colour": c} for top, lv, c, _ in LEVELS
            ],
            "cells": [
                self.cells[(p, i)].to_dict() for i in reversed(IMPACTS) for p in PROBABILITIES
            ],
            "risks": [
                {
                    "id": r.id,
                    "event": r.event,
                    "description": r.description,
                    "probability": r.probability,
                    "impact": r.impact,
                    "criticality": criticality(r.probability, r.impact),
                    "level": level_of(criticality(r.probability, r.impact))[0],
                    "triggers_plan": r.triggers_plan,
                    "mitigation": r.mitigation,
                }
                for r in self.risks
            ],
            "summary": {
                "risks": len(self.risks),
                "trigger_plan": sum(r.triggers_plan for r in self.risks),
                "by_level": by_level,
            },
        }


def build_matrix(plan: m.Plan) -> Matrix:
    cells = {(p, i): Cell(p, i) for p in PROBABILITIES for i in IMPACTS}
    for risk in plan.risks:
        cells[(risk.probability, risk.impact)].risks.append(risk)
    return Matrix(cells, list(plan.risks))
