"""Prometheus alerting rules over `drplan serve`'s metrics (`drplan prometheus-rules`).

The daemon notifies by itself (serve/notify.py), but a team that already runs Prometheus
and Alertmanager wants its backups in the same place as the rest of its alerts: the
rules here turn the metrics of serve/metrics.py into alerts with the same meaning as the
daemon's notifications (run failed, RPO at risk or breached, check failed), plus what
only an outside watcher can say (the daemon itself is down).

The rules work with no plan at hand: every threshold has a default, and the expressions
match any `plan` label. Given plans, a plan's own thresholds (its notifications'
`rpo_warning`, its drill cadence) apply to its series, the defaults to every other plan:
one alert per condition whose expression is an `or` of per-plan terms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from drplan.plan import model as m

GROUP = "drplan"
DEFAULT_RPO_WARNING = 0.8
DEFAULT_DRILL_MAX_AGE_S = 30 * 86400.0
DEFAULT_FOR_S = 300.0
DEFAULT_SCRAPE_JOB = "drplan"
# a drill "every 30d" is late once its cadence and a day for retries have passed
DRILL_SLACK_S = 86400.0


@dataclass(frozen=True)
class PlanThresholds:
    """One plan's own thresholds, read from its file."""

    name: str
    rpo_warning: float | None = None
    drill_max_age_s: float | None = None


@dataclass(frozen=True)
class Settings:
    """What shapes the rules: defaults, per-plan overrides, and how Prometheus names the
    daemon's scrape job."""

    rpo_warning: float = DEFAULT_RPO_WARNING
    drill_max_age_s: float = DEFAULT_DRILL_MAX_AGE_S
    for_s: float = DEFAULT_FOR_S
    scrape_job: str = DEFAULT_SCRAPE_JOB
    plans: list[PlanThresholds] = field(default_factory=list)


def thresholds(plan: m.Plan) -> PlanThresholds:
    """A plan's thresholds as the daemon itself applies them: the strictest `rpo_warning`
    of its notifications (serve/daemon.py watch_rpo), and its drill cadence plus a day."""
    warning = min((n.rpo_warning for n in plan.notifications), default=None)
    drill = plan.drills.every + DRILL_SLACK_S if plan.drills.every else None
    return PlanThresholds(plan.stack.name, warning, drill)


def prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration (`300s`, `1d`): whole seconds, never below 0."""
    s = max(0, math.ceil(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_literal(text: str) -> str:
    """`text` matched literally by an RE2 regular expression (a stack name rarely needs it)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def per_plan(template: str, default: float, overrides: dict[str, float]) -> str:
    """`template` (with `{sel}` for a label selector and `{v}` for the threshold) applied
    to each plan with its own threshold, and to every other plan with the default.
    Plans whose threshold is the default need no term of their own."""
    own = {name: v for name, v in overrides.items() if v != default}
    if not own:
        return template.format(sel="", v=_number(default)).replace("{}", "")
    terms = [
        template.format(sel=f"plan={_quote(name)}", v=_number(v)) for name, v in sorted(own.items())
    ]
    others = "|".join(_regex_literal(name) for name in sorted(own))
    terms.append(template.format(sel=f"plan!~{_quote(others)}", v=_number(default)))
    return "\n  or\n".join(f"({t})" for t in terms)


def _alert(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    for_s: float,
    reason: str | None = None,
) -> dict[str, Any]:
    """One alerting rule. Two rules of one alert differ by their `reason` label (promtool
    rejects two rules with the same name and labels)."""
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_s > 0:
        rule["for"] = prom_duration(for_s)
    rule["labels"] = {"severity": severity, **({"reason": reason} if reason else {})}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def rules(cfg: Settings) -> dict[str, Any]:
    """The rules file, as the document Prometheus reads (`groups:` of `rules:`)."""
    f = cfg.for_s
    warn = {p.name: p.rpo_warning for p in cfg.plans if p.rpo_warning is not None}
    drill = {p.name: p.drill_max_age_s for p in cfg.plans if p.drill_max_age_s is not None}
    ratio = "drplan_rpo_age_seconds{{{sel}}} / drplan_rpo_objective_seconds{{{sel}}}"
    at_risk = per_plan(f"{ratio} >= {{v}} and {ratio} <= 1", cfg.rpo_warning, warn)
    drill_age = per_plan(
        "time() - drplan_drill_last_timestamp_seconds{{{sel}}} > {v}", cfg.drill_max_age_s, drill
    )
    job = _quote(cfg.scrape_job)
    svc = "{{ $labels.plan }}/{{ $labels.service }}"
    out = [
        _alert(
            "DrplanRunFailed",
            "max by (plan, job) (drplan_job_last_failed) == 1",
            "warning",
            "drplan {{ $labels.job }} of plan {{ $labels.plan }} failed",
            "The newest {{ $labels.job }} run of plan {{ $labels.plan }} failed; the daemon "
            "retries it with a backoff. Its log and `drplan status {{ $labels.plan }}` say why.",
            f,
        ),
        _alert(
            "DrplanRpoAtRisk",
            at_risk,
            "warning",
            f"RPO of {svc} at risk",
            f"The newest complete backup of {svc} is {{{{ $value | humanizePercentage }}}} "
            "of its RPO objective: the objective is breached if no backup completes soon.",
            f,
        ),
        _alert(
            "DrplanRpoBreached",
            "drplan_rpo_age_seconds / drplan_rpo_objective_seconds > 1",
            "critical",
            f"RPO of {svc} breached",
            f"The newest complete backup of {svc} is {{{{ $value | humanizePercentage }}}} "
            "of its RPO objective: a disaster now would lose more data than the plan allows.",
            f,
        ),
        _alert(
            "DrplanNoBackup",
            "drplan_rpo_objective_seconds unless on (plan, service) drplan_rpo_age_seconds",
            "critical",
            f"No complete backup of {svc}",
            f"The repository holds no complete backup of {svc}, which has an RPO objective.",
            f,
        ),
        _alert(
            "DrplanNoRecentDrill",
            drill_age,
            "warning",
            "No recent drill of plan {{ $labels.plan }}",
            "The newest drill of plan {{ $labels.plan }} started "
            "{{ $value | humanizeDuration }} ago: the recovery has not been rehearsed lately.",
            f,
            reason="stale",
        ),
        _alert(
            "DrplanNoRecentDrill",
            "drplan_plan_valid == 1 unless on (plan) drplan_drill_last_timestamp_seconds",
            "warning",
            "No drill of plan {{ $labels.plan }}",
            "The repository of plan {{ $labels.plan }} holds no drill: the recovery has "
            "never been rehearsed (`drplan drill`, or `drills.every` in the plan).",
            max(f, 3600.0),  # a plan just added has not had the time for its first drill
            reason="never",
        ),
        _alert(
            "DrplanDrillFailed",
            "drplan_drill_passed == 0",
            "warning",
            "The newest drill of plan {{ $labels.plan }} failed",
            "The newest drill of plan {{ $labels.plan }} did not pass: the recovery as "
            "written does not work. Its report says which step failed.",
            f,
        ),
        _alert(
            "DrplanCheckFailed",
            "drplan_check_ok == 0",
            "critical",
            "Repository check of plan {{ $labels.plan }} failed",
            "The newest `restic check` of the repository of plan {{ $labels.plan }} found "
            "errors: backups in it may not restore.",
            f,
        ),
        _alert(
            "DrplanRepositoryDown",
            "drplan_repository_up == 0",
            "critical",
            "Repository of plan {{ $labels.plan }} does not open",
            "The daemon could not open the repository of plan {{ $labels.plan }} at its "
            "last read: backups, copies and checks fail until it is back.",
            f,
        ),
        _alert(
            "DrplanPlanInvalid",
            "drplan_plan_valid == 0",
            "warning",
            "Plan {{ $labels.plan }} does not validate",
            "The plan file of {{ $labels.plan }} does not load or validate (`drplan validate` "
            "says where); the daemon keeps the last good version, or runs nothing.",
            f,
        ),
        _alert(
            "DrplanDaemonDown",
            f"up{{job={job}}} == 0",
            "critical",
            "drplan daemon {{ $labels.instance }} is down",
            "Prometheus cannot scrape the drplan daemon at {{ $labels.instance }}: no "
            "backup, copy, check or drill runs, and no RPO is watched.",
            f,
            reason="scrape_failed",
        ),
        _alert(
            "DrplanDaemonDown",
            "absent(drplan_up)",
            "critical",
            "No drplan daemon reports metrics",
            f"No series drplan_up: no drplan daemon is scraped (scrape job {cfg.scrape_job} "
            "missing, or the daemon is down).",
            f,
            reason="absent",
        ),
    ]
    return {"groups": [{"name": GROUP, "rules": out}]}


def render(cfg: Settings) -> str:
    """The rules file's text (YAML), with a header saying where it came from."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line expressions as literal blocks, readable as PromQL."""

    def text_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text_block)
    head = (
        "# Prometheus alerting rules for drplan serve's metrics, written by "
        "`drplan prometheus-rules`.\n# Check with: promtool check rules FILE\n"
    )
    return head + yaml.dump(
        rules(cfg), Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True
    )
