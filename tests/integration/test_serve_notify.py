"""`drplan serve` notifies people (issue 16): the real daemon, the campus stack on the
testbed, a real SMTP server with a login (aiosmtpd) and a real webhook receiver on
127.0.0.1, reached through Apprise's e-mail and JSON plugins. The plan names both URLs as
secret references (`{env: ...}`), set only in the daemon's environment.

- a scheduled backup fails because the repository is gone (moved away): an e-mail and a
  webhook say which plan and what failed;
- a drill asked for over HTTP (with the daemon's token) passes: both channels carry the
  measured RTO;
- no secret (repository password, SMTP password, webhook token, the URLs, the daemon's
  token) appears in what was sent nor in the daemon's log, at debug level.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed import plans
from testbed.plans import PASSWORD
from testbed.serve import Serve
from tests.unit.test_serve_notifier import HookSink, MailSink, wait_for

pytestmark = pytest.mark.integration

MAIL_LOGIN = ("drplan-notifier", "smtp-Pa55-" + os.urandom(4).hex())
HOOK_TOKEN = "hooktoken" + os.urandom(6).hex()
SERVE_TOKEN = "serve-token-" + os.urandom(6).hex()


@pytest.fixture(scope="module")
def campus(testbed, tmp_path_factory) -> Iterator[plans.TestPlan]:
    """The campus stack, its repository initialised and one complete backup in it."""
    name = f"servenotify{os.urandom(3).hex()}"
    tp = plans.adapt("campus", tmp_path_factory.mktemp("serve-notify") / "campus", name=name)
    plans.deploy(testbed["primary"], tp)
    try:
        plans.ok("repo", "init", tp.path)
        plans.ok("backup", tp.path)
        yield tp
    finally:
        plans.remove(testbed["primary"], tp)


@pytest.fixture
def receivers() -> Iterator[tuple[MailSink, HookSink]]:
    with MailSink(login=MAIL_LOGIN) as mail, HookSink() as hook:
        yield mail, hook


def notifying_plan(tp: plans.TestPlan, dest: Path, backup: dict) -> Path:
    """A copy of the campus plan named after `dest` (one per test), same stack and
    repository, with `backup` and both notification channels as secret references."""
    doc = yaml.safe_load(tp.path.read_text())
    doc["backup"] = backup
    doc["objectives"] = {"rpo": "1h", "rto": "30m"}
    doc["notifications"] = [{"url": {"env": "T_NOTIFY_MAIL"}}, {"url": {"env": "T_NOTIFY_HOOK"}}]
    path = tp.dir / f"{dest.name}.yml"  # beside the compose file, as a plan must be
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def channels(mail: MailSink, hook: HookSink) -> dict[str, str]:
    return {
        "T_NOTIFY_MAIL": mail.url(),
        "T_NOTIFY_HOOK": f"json://127.0.0.1:{hook.port}/hooks/{HOOK_TOKEN}",
    }


def arrived(mail: MailSink, hook: HookSink, title: str) -> tuple[str, dict] | None:
    """The e-mail text and the webhook document whose title contains `title`, once both
    are there."""
    texts = [t for t in mail.texts() if title in t.splitlines()[0]]
    posts = [p for p in hook.posts if title in p.get("title", "")]
    return (texts[0], posts[0]) if texts and posts else None


def assert_no_secret(urls: dict[str, str], *texts: str) -> None:
    secrets = [PASSWORD, MAIL_LOGIN[1], HOOK_TOKEN, SERVE_TOKEN, *urls.values()]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked: {secret[:4]}... in:\n{text[-3000:]}"


def test_a_failed_scheduled_backup_is_mailed_and_posted(campus, receivers, tmp_path):
    mail, hook = receivers
    urls = channels(mail, hook)
    plan = notifying_plan(
        campus, tmp_path / "plan", {"schedule": {"every": "1m"}, "retention": {"keep_last": 3}}
    )
    repo = Path(campus.repo)
    away = repo.with_name(repo.name + ".away")
    repo.rename(away)  # the repository unreachable: the scheduled backup fails
    serve = None
    try:
        serve = Serve(
            [plan], tmp_path / "state", token=SERVE_TOKEN, env=urls, extra=["--log-level", "debug"]
        )
        title = f"backup of {campus.name} failed"
        text, post = wait_for(
            f"'{title}' by e-mail and webhook", lambda: arrived(mail, hook, title), 150
        )
        assert hook.paths[0] == f"/hooks/{HOOK_TOKEN}"
        assert post["type"] == "failure"
        assert str(repo) in post["message"] or "repository" in post["message"], post
        assert str(repo) in text or "repository" in text, text
        assert mail.logins and set(mail.logins) == {MAIL_LOGIN[0]}  # it did log in
        assert serve.healthy()
        assert_no_secret(urls, text, json.dumps(hook.posts), serve.text(), " ".join(serve.argv))
        assert re.search(r"notified run_failed via notifications\[1\]\.url", serve.text())
    finally:
        if away.exists() and not repo.exists():
            away.rename(repo)
        if serve is not None:
            assert serve.stop() == 0, serve.text()


def test_a_drill_is_mailed_and_posted_with_its_rto(campus, receivers, tmp_path):
    mail, hook = receivers
    urls = channels(mail, hook)
    # the backup just made is fresh: nothing is due but the drill asked for over HTTP
    plan = notifying_plan(
        campus, tmp_path / "plan", {"schedule": {"every": "1h"}, "retention": {"keep_last": 3}}
    )
    serve = Serve(
        [plan], tmp_path / "state", token=SERVE_TOKEN, env=urls, extra=["--log-level", "debug"]
    )
    try:
        assert serve.request("POST", f"/plans/{campus.name}/run/drill") == 303
        title = f"drill of {campus.name} passed"
        text, post = wait_for(
            f"'{title}' by e-mail and webhook", lambda: arrived(mail, hook, title), 200
        )
        rto = re.search(r"RTO (\d+)s \(objective 1800s\)", post["message"])
        assert rto and int(rto.group(1)) > 0, post
        assert rto.group(0) in text, text
        assert post["type"] == "info"
        drills = plans.ok_json("drills", plan)["drills"]
        assert drills and drills[-1]["passed"], drills
        assert_no_secret(urls, text, json.dumps(hook.posts), serve.text(), " ".join(serve.argv))
    finally:
        assert serve.stop() == 0, serve.text()
