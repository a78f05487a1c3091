"""The Prometheus rules of `drplan prometheus-rules` (drplan.serve.rules): the YAML parses
into the expected alerts over metrics the collector really exports, `promtool check
rules` accepts it, and `promtool test rules` shows each alert firing on the series that
should fire it (and not on the ones that should not), per-plan thresholds included."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from drplan.cli import app
from drplan.serve import metrics
from drplan.serve import rules as r
from tests.unit.plan_helpers import PLAN, write_stack

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool (Debian's prometheus) is not installed"
)
EXPECTED = {
    "DrplanRunFailed",
    "DrplanRpoAtRisk",
    "DrplanRpoBreached",
    "DrplanNoBackup",
    "DrplanNoRecentDrill",
    "DrplanDrillFailed",
    "DrplanCheckFailed",
    "DrplanRepositoryDown",
    "DrplanPlanInvalid",
    "DrplanDaemonDown",
}


def all_rules(doc: dict) -> list[dict]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def exported_metrics() -> set[str]:
    """The metric names serve/metrics.py exports (counters gain `_total`)."""
    source = Path(metrics.__file__).read_text()
    names = set(re.findall(r'"(drplan_[a-z_]+)"', source))
    return names | {f"{n}_total" for n in names}


def test_the_default_rules_parse_and_hold_every_alert():
    doc = yaml.safe_load(r.render(r.Settings()))
    rules = all_rules(doc)
    assert {rule["alert"] for rule in rules} == EXPECTED
    exported = exported_metrics()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        assert rule["for"] == "5m" or rule["labels"].get("reason") == "never", rule
        used = set(re.findall(r"\bdrplan_[a-z_]+", rule["expr"]))
        assert used <= exported, f"{rule['alert']} uses metrics nobody exports: {used - exported}"
    per_plan = [rule for rule in rules if "service" in rule["annotations"]["summary"]]
    assert all("$labels.plan" in x["annotations"]["summary"] for x in per_plan)
    [breached] = [x for x in rules if x["alert"] == "DrplanRpoBreached"]
    assert breached["labels"]["severity"] == "critical"
    assert breached["expr"] == "drplan_rpo_age_seconds / drplan_rpo_objective_seconds > 1"
    [at_risk] = [x for x in rules if x["alert"] == "DrplanRpoAtRisk"]
    assert ">= 0.8 and" in at_risk["expr"] and "<= 1" in at_risk["expr"]
    drill = [x for x in rules if x["alert"] == "DrplanNoRecentDrill"]
    assert {x["labels"]["reason"] for x in drill} == {"stale", "never"}
    assert any("> 2592000" in x["expr"] for x in drill)  # 30 days


def test_per_plan_thresholds_apply_to_their_plan_and_the_default_to_the_others():
    cfg = r.Settings(
        plans=[r.PlanThresholds("a", 0.9, None), r.PlanThresholds("b.c", 0.8, 8 * 86400.0)]
    )
    rules = {(x["alert"], x["labels"].get("reason")): x["expr"] for x in all_rules(r.rules(cfg))}
    at_risk = rules[("DrplanRpoAtRisk", None)]
    assert 'drplan_rpo_age_seconds{plan="a"}' in at_risk and ">= 0.9" in at_risk
    # b.c's warning is the default: no term of its own, the catch-all covers it
    assert 'plan!~"a"' in at_risk and "b.c" not in at_risk
    drill = rules[("DrplanNoRecentDrill", "stale")]
    assert '{plan="b.c"} > 691200' in drill
    assert 'plan!~"b\\\\.c"} > 2592000' in drill  # the dot matched literally


def test_durations_and_thresholds_are_written_as_prometheus_reads_them():
    assert r.prom_duration(300) == "5m"
    assert r.prom_duration(90) == "90s"
    assert r.prom_duration(2.5) == "3s"
    assert r.prom_duration(86400 * 30) == "30d"
    assert r.prom_duration(-1) == "0s"
    assert "for" not in all_rules(r.rules(r.Settings(for_s=0)))[0]


@needs_promtool
@pytest.mark.parametrize(
    "cfg",
    [
        r.Settings(),
        r.Settings(
            rpo_warning=0.7,
            for_s=0,
            scrape_job='odd "job"',
            plans=[r.PlanThresholds("x-y", 0.95, 86400.0), r.PlanThresholds("z|w", None, 60.0)],
        ),
    ],
    ids=["defaults", "overrides"],
)
def test_promtool_check_rules_accepts_them(cfg, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(r.render(cfg))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules(yaml.safe_load(path.read_text())))} rules found" in proc.stdout


def alert(name: str, **labels: str) -> dict:
    return {"exp_labels": labels}


# promtool's unit tests: series at 1-minute steps, rules with `for: 1m`. Plan p uses the
# default RPO warning (0.8), plan q its own (0.5). RPO ratios of both: 0.2, 0.4 ... 1.4.
SERIES = [
    ('drplan_rpo_age_seconds{plan="p",service="db"}', "60+60x10"),
    ('drplan_rpo_objective_seconds{plan="p",service="db"}', "300x10"),
    ('drplan_rpo_age_seconds{plan="q",service="db"}', "60+60x10"),
    ('drplan_rpo_objective_seconds{plan="q",service="db"}', "300x10"),
    ('drplan_rpo_objective_seconds{plan="p",service="web"}', "300x10"),  # never backed up
    ('drplan_job_last_failed{plan="p",job="backup",instance="d:9180"}', "0 0 1x8"),
    ('drplan_job_last_failed{plan="p",job="copy",instance="d:9180"}', "0x10"),
    ('drplan_drill_last_timestamp_seconds{plan="p"}', "0x150"),  # time() - 0: 0, 60 ...
    ('drplan_plan_valid{plan="p"}', "1x150"),
    ('drplan_plan_valid{plan="q"}', "1x150"),  # q has no drill at all
    ('drplan_check_ok{plan="p"}', "1 1 0x8"),
    ('drplan_repository_up{plan="q"}', "1 0x9"),
    ('drplan_drill_passed{plan="p"}', "0x10"),
    ('up{job="drplan",instance="d:9180"}', "1 0x9"),
]


def rule_tests() -> list[dict]:
    p_db, q_db = {"plan": "p", "service": "db"}, {"plan": "q", "service": "db"}
    cases = [
        # 2m: q at 0.6 (its warning 0.5) pending; 3m: q firing, p (0.8 since 3m) pending
        ("DrplanRpoAtRisk", "2m", []),
        ("DrplanRpoAtRisk", "3m", [{"severity": "warning", **q_db}]),
        (
            "DrplanRpoAtRisk",
            "4m",
            [{"severity": "warning", **p_db}, {"severity": "warning", **q_db}],
        ),
        # past 1.0 at 5m: at risk no more, breached once it held 1 minute (6m)
        ("DrplanRpoAtRisk", "6m", []),
        ("DrplanRpoBreached", "4m", []),
        ("DrplanRpoBreached", "5m", []),
        (
            "DrplanRpoBreached",
            "6m",
            [{"severity": "critical", **p_db}, {"severity": "critical", **q_db}],
        ),
        ("DrplanNoBackup", "2m", [{"severity": "critical", "plan": "p", "service": "web"}]),
        ("DrplanRunFailed", "2m", []),
        ("DrplanRunFailed", "3m", [{"severity": "warning", "plan": "p", "job": "backup"}]),
        # the newest drill is 120 s old at 2m (not > 120), 180 s at 3m, firing at 4m
        ("DrplanNoRecentDrill", "3m", []),
        ("DrplanNoRecentDrill", "4m", [{"severity": "warning", "reason": "stale", "plan": "p"}]),
        # a plan with no drill at all: after an hour
        (
            "DrplanNoRecentDrill",
            "70m",
            [
                {"severity": "warning", "reason": "stale", "plan": "p"},
                {"severity": "warning", "reason": "never", "plan": "q"},
            ],
        ),
        ("DrplanCheckFailed", "3m", [{"severity": "critical", "plan": "p"}]),
        ("DrplanRepositoryDown", "2m", [{"severity": "critical", "plan": "q"}]),
        ("DrplanDrillFailed", "1m", [{"severity": "warning", "plan": "p"}]),
        ("DrplanPlanInvalid", "5m", []),
        (
            "DrplanDaemonDown",
            "2m",
            [
                {"severity": "critical", "reason": "scrape_failed", "job": "drplan"}
                | {"instance": "d:9180"},
                {"severity": "critical", "reason": "absent"},
            ],
        ),
    ]
    return [
        {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": x} for x in exp]}
        for name, at, exp in cases
    ]


@needs_promtool
def test_promtool_test_rules_fires_each_alert_on_the_right_series(tmp_path):
    cfg = r.Settings(for_s=60, drill_max_age_s=120, plans=[r.PlanThresholds("q", 0.5, None)])
    (tmp_path / "rules.yml").write_text(r.render(cfg))
    # promtool compares annotations whenever an alert fires: the firing logic is tested
    # on the rules without them, the rendered annotations on one alert with them
    bare = r.rules(cfg)
    for rule in all_rules(bare):
        del rule["annotations"]
    (tmp_path / "bare.yml").write_text(yaml.safe_dump(bare))
    firing = {
        "rule_files": ["bare.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES],
                "alert_rule_test": rule_tests(),
            }
        ],
    }
    rendered = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {  # the annotations, rendered: the plan, the service, the share of the RPO
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES[:2]],
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "DrplanRpoBreached",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "plan": "p",
                                    "service": "db",
                                },
                                "exp_annotations": {
                                    "summary": "RPO of p/db breached",
                                    "description": "The newest complete backup of p/db is 140% "
                                    "of its RPO objective: a disaster now would lose more data "
                                    "than the plan allows.",
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }
    for name, tests in (("firing.yml", firing), ("rendered.yml", rendered)):
        (tmp_path / name).write_text(yaml.safe_dump(tests, sort_keys=False))
        proc = subprocess.run(
            [PROMTOOL, "test", "rules", name], capture_output=True, text=True, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout


NOTIFYING = PLAN.replace(
    "services:\n",
    "drills: {every: 7d}\n"
    "notifications:\n"
    "  - {url: {env: HOOK_URL}, rpo_warning: 0.9}\n"
    "  - {url: {env: MAIL_URL}, rpo_warning: 0.85}\n"
    "services:\n",
    1,
)


def test_the_command_reads_thresholds_from_the_plan(runner, tmp_path):
    plan = write_stack(tmp_path, NOTIFYING)
    out = tmp_path / "out" / "drplan.rules.yml"
    result = runner.invoke(app, ["prometheus-rules", str(plan), "-o", str(out), "--for", "30s"])
    assert result.exit_code == 0, result.output
    rules = {
        (x["alert"], x["labels"].get("reason")): x
        for x in all_rules(yaml.safe_load(out.read_text()))
    }
    at_risk = rules[("DrplanRpoAtRisk", None)]["expr"]
    assert '{plan="campus"} >= 0.85' in at_risk  # the strictest of its notifications
    assert '{plan!~"campus"} >= 0.8' in at_risk  # any other plan: the default
    assert '{plan="campus"} > 691200' in rules[("DrplanNoRecentDrill", "stale")]["expr"]  # 7d+1d
    assert rules[("DrplanRunFailed", None)]["for"] == "30s"

    # explicit options are the operator's word for every plan, the plan's included
    result = runner.invoke(
        app, ["prometheus-rules", str(plan), "--rpo-warning", "0.6", "--drill-max-age", "2d"]
    )
    assert result.exit_code == 0, result.output
    rules = {
        (x["alert"], x["labels"].get("reason")): x for x in all_rules(yaml.safe_load(result.stdout))
    }
    assert "campus" not in rules[("DrplanRpoAtRisk", None)]["expr"]
    assert ">= 0.6" in rules[("DrplanRpoAtRisk", None)]["expr"]
    assert rules[("DrplanNoRecentDrill", "stale")]["expr"].endswith("> 172800")


def test_the_command_works_without_a_plan(runner):
    result = runner.invoke(app, ["prometheus-rules"])
    assert result.exit_code == 0, result.output
    assert {x["alert"] for x in all_rules(yaml.safe_load(result.stdout))} == EXPECTED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpo-warning", "1.5"], "--rpo-warning: 1.5 is not between 0 and 1"),
        (["--rpo-warning", "0"], "--rpo-warning: 0 is not between 0 and 1"),
        (["--drill-max-age", "soon"], "--drill-max-age: bad duration 'soon'"),
        (["--for", "5 minutes"], "--for: bad duration"),
        (["--scrape-job", " "], "--scrape-job: an empty job name"),
        (["no-such-plan.yml"], "no-such-plan.yml"),
    ],
)
def test_user_errors_are_located_lines_with_exit_2(runner, args, message):
    result = runner.invoke(app, ["prometheus-rules", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unwritable_output_is_an_operation_error(runner, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["prometheus-rules", "-o", str(blocker / "rules.yml")])
    assert result.exit_code == 1, result.output
    assert f"cannot write {blocker / 'rules.yml'}" in result.output
