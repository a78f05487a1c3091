"""``drplan validate``: every problem of a plan, one located line each, or a short OK."""

from __future__ import annotations

from collections.abc import Callable

from drplan.plan.loader import Problem
from drplan.plan.validate import ValidationResult, validate_file


def validate_or_problems(path: str) -> ValidationResult | list[Problem]:
    """Validate a plan file; an unexpected internal failure becomes one located problem.

    ``validate`` must never end in a traceback, whatever the input.
    """
    try:
        return validate_file(path, display=path)
    except Exception as exc:
        return [Problem(path, 1, 1, "(plan)", f"internal error while validating: {exc!r}"[:300])]


def summary(result: ValidationResult) -> str:
    """One line for a valid plan."""
    plan = result.plan
    assert plan is not None
    sources = sum(len(s.data) for s in plan.services.values())
    warnings = len(result.problems) - len(result.errors)
    parts = [
        f"stack {plan.stack.name}",
        f"{len(plan.services)} services",
        f"{sources} data sources",
        f"{len(plan.sites)} sites",
        f"{len(plan.repositories)} repositories",
        f"{len(plan.profiles) + 1} profiles",
    ]
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"OK: {result.loaded.doc.file}: " + ", ".join(parts)


def run_validate(path: str, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    """Print problems to ``out`` (one per line) and a summary; return the exit code."""
    result = validate_or_problems(path)
    problems = result if isinstance(result, list) else result.problems
    for problem in problems:
        out(problem.format())
    if isinstance(result, list) or not result.ok:
        n = len([p for p in problems if p.severity == "error"]) or 1
        err(f"{n} problem{'s' if n != 1 else ''} in {path}")
        return 2
    out(summary(result))
    return 0
