"""The risk register as a probability x impact matrix (text, JSON, SVG)."""

from drplan.risks.matrix import IMPACTS, PROBABILITIES, Matrix, build_matrix

__all__ = ["IMPACTS", "PROBABILITIES", "Matrix", "build_matrix"]
