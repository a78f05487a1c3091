"""`drplan prometheus-rules`: alerting rules over `drplan serve`'s metrics, for Prometheus."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from drplan.errors import InputError, OperationError


def _seconds(text: str, option: str) -> float:
    from drplan.plan.units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(str(exc), where=option) from None


def _write(path: Path, text: str) -> None:
    """Replace the file at once: Prometheus may reload it at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prometheus_rules(
    plans: list[str] = typer.Argument(
        None, help="Plan files whose own thresholds apply to their series (optional)."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Write the rules to this file (default: stdout)."
    ),
    drill_max_age: str | None = typer.Option(
        None,
        "--drill-max-age",
        help="Alert when the newest drill is older than this (default: 30d, or a plan's "
        "drills.every plus a day).",
    ),
    rpo_warning: float | None = typer.Option(
        None,
        "--rpo-warning",
        help="RPO share past which an RPO is at risk (default: 0.8, or a plan's "
        "notifications rpo_warning).",
    ),
    for_: str = typer.Option(
        "5m", "--for", help="How long a condition must hold before its alert fires."
    ),
    scrape_job: str = typer.Option(
        "drplan", "--scrape-job", help="Prometheus job name of the daemon's scrape config."
    ),
) -> None:
    """Write Prometheus alerting rules for drplan serve's metrics (run failed, RPO at risk
    or breached, no recent drill, check failed, repository or daemon down)."""
    from drplan.serve import rules as r

    if rpo_warning is not None and not 0 < rpo_warning < 1:
        raise InputError(f"{rpo_warning:g} is not between 0 and 1", where="--rpo-warning")
    if not scrape_job.strip():
        raise InputError("an empty job name", where="--scrape-job")
    for_s = _seconds(for_, "--for")
    overrides = []
    if plans:
        from drplan.actions.context import load_plan

        for p in plans:
            t = r.thresholds(load_plan(p).plan)
            # an explicit option is the operator's word for every plan
            overrides.append(
                r.PlanThresholds(
                    t.name,
                    None if rpo_warning is not None else t.rpo_warning,
                    None if drill_max_age is not None else t.drill_max_age_s,
                )
            )
    cfg = r.Settings(
        rpo_warning=r.DEFAULT_RPO_WARNING if rpo_warning is None else rpo_warning,
        drill_max_age_s=r.DEFAULT_DRILL_MAX_AGE_S
        if drill_max_age is None
        else _seconds(drill_max_age, "--drill-max-age"),
        for_s=for_s,
        scrape_job=scrape_job.strip(),
        plans=overrides,
    )
    text = r.render(cfg)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        _write(Path(output), text)
    except OSError as exc:
        raise OperationError(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {output}", err=True)
