"""Rendering helpers: SVG → PNG, and a look at the pixels, so charts can be checked as seen."""

from drplan.render.png import PngStats, png_stats, svg_to_png

__all__ = ["PngStats", "png_stats", "svg_to_png"]
