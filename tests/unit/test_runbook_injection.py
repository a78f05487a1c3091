"""A runbook must not inject: hostile values in every field that reaches its shell blocks.

A runbook's blocks are copied and run by hand during a disaster. Their values come from
the plan and from the run's manifest, read back from a backup repository that an attacker
may have written to. Here every such field gets a hostile string (command substitution,
backticks, quotes, newlines, `; rm -rf`, `--password-command=...`, heredoc terminators, a
Markdown fence, unicode), the runbook is written, every shell block is taken out of the
Markdown as a CommonMark reader sees it, and each runs under `bash -euo pipefail` with
docker, restic, the database clients and a few others replaced by stubs that record their
argv. No injected command may run (the canary file PWNED never appears, the victim file
stays), each value reaches the stubs as one argument, after `--` where it is positional,
and the Markdown holds exactly the blocks the generator wrote.

The manifest is built with `model_construct`, so that the runbook is tested on its own,
whatever the manifest's validation refuses upstream; the plan is loaded valid, then its
fields that validation leaves free are set to hostile values.
"""

from __future__ import annotations

import copy
import os
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from drplan import runbook as rb
from drplan.errors import DrplanError, InputError, OperationError
from drplan.runbook import quote
from drplan.sources import mariadb, postgresql
from drplan.store import manifest as mf
from drplan.store.restic import Repository
from tests.unit.drill_helpers import campus_plan

SECRET = "s3cret-never-in-a-runbook"
CANARY = "PWNED"
VICTIM = "victim"

NASTY = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; '",
    '"; touch PWNED; "',
    "x\ntouch PWNED\n",
    "x\r\ntouch PWNED #",
    "; rm -rf ./victim; touch PWNED",
    "--password-command=touch PWNED",
    "-rf",
    "EOF\ntouch PWNED\nEOF",
    "IMAGES\ntouch PWNED\nIMAGES",
    "DRPLAN\ntouch PWNED\nDRPLAN",
    "DRPLAN_HTTP\ntouch PWNED\nDRPLAN_HTTP",
    "\n```\n\n```sh\ntouch PWNED\n```\n",
    "~~~sh\ntouch PWNED\n~~~",
    "${IFS}touch${IFS}PWNED",
    "> PWNED",
    "| touch PWNED",
    "&& touch PWNED &",
    "$'\\n' touch PWNED",
    '\\"; touch PWNED; #',
    "\\'; touch PWNED; #",
    "ünïcødé ☃ 名前 \u202e \u2028 \x85",
    "a b\tc *",
    "<script>alert(1)</script> [x](javascript:1) | # _*",
]
# Everything at once: if a field is quoted wrong, one of these breaks out
SINK = "--password-command=touch PWNED " + "\n".join(NASTY)

# Fields that reach the runbook's shell blocks (and its Markdown)
FIELDS = [
    # the plan (validation leaves these free)
    "stack_prefix",
    "docker_host",
    "repo_url",
    "opt_key",
    "opt_value",
    "image",
    "volume",
    "pg_user",
    "pg_db",
    "maria_user",
    "maria_db",
    "http_url",
    "http_body",
    "tcp_host",
    "sql_query",
    "sql_expect",
    "cmd_output",
    "check_name",
    "description",
    # the run's manifest (from the repository: untrusted)
    "plan",
    "run_id",
    "image_name",
    "image_id",
    "images_snapshot",
    "database",
    "table",
    "rows",
    "files",
    "tree",
    "keys",
    "file",
    "owner",
    "snap_pg",
    "path_pg",
    "snap_my",
    "path_my",
    "snap_redis",
    "path_redis",
    "snap_files",
    "path_files",
    "snap_lite",
    "path_lite",
    "snap_exam",
    "path_exam",
]

STUBBED = [
    "docker",
    "restic",
    "psql",
    "pg_restore",
    "mariadb",
    "mysql",
    "redis-cli",
    "sqlite3",
    "tar",
    "chown",
    "sleep",
    "curl",
    "wget",
    "ssh",
    "sudo",
]
STUB = r"""#!/bin/sh
# stand-in: records its argv (count, name, args; NUL-separated), answers what blocks read
printf '%s\0' "$#" "${0##*/}" "$@" >> "$STUB_LOG"
case "${0##*/} $1" in
  "docker ps") echo c0ffee ;;
  "docker info") case "$*" in *LocalNodeState*) echo active ;; *) echo true ;; esac ;;
  "docker inspect") echo healthy ;;
  "docker volume") if [ "$2" = inspect ]; then printf '%s\n' "$STUB_MP"; fi ;;
  "restic snapshots") echo complete:yes ;;
esac
exit 0
"""


def _edit(plan: dict) -> None:
    """The campus plan with a source of every engine and a check of every kind."""
    s = plan["services"]
    s["db"]["data"]["pg"].update(user="postgres", databases=["campus"])
    s["db"]["checks"] = [{"type": "sql", "query": "SELECT 1", "expect": "1"}]
    s["exam"]["data"]["maria"] = {"engine": "mariadb", "user": "root", "databases": ["exam"]}
    s["exam"]["checks"] = [
        {"type": "sql", "query": "SELECT 1", "source": "maria"},
        {"type": "tcp", "host": "db", "port": 5432},
    ]
    s["web"]["data"]["lite"] = {"engine": "sqlite", "volume": "files", "path": "/srv/files/app.db"}
    s["web"]["checks"] = [
        {"type": "http", "url": "http://web:8080/health", "body_contains": "ok"},
        {"type": "command", "command": ["true"], "where": "host", "expect_output": "ok"},
    ]
    s["redis"]["health"] = {"type": "tcp", "host": "redis", "port": 6379}
    for svc in s.values():  # one attempt each: the stubs answer at once anyway
        for check in [svc.get("health") or {}, *svc.get("checks", [])]:
            check["retries"] = 1


class Base(tuple):
    """(plan context, stubs folder); shown short in hypothesis' failure reports."""

    def __repr__(self) -> str:
        return "Base(campus plan, stubs)"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    stubs = tmp_path_factory.mktemp("stubs")
    for name in STUBBED:
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(stat.S_IRWXU)
    return Base((campus_plan(tmp, _edit), stubs))


def _file(value: str) -> str:
    """A manifest file name that stays in its volume (leaving it is refused: see
    test_a_file_outside_its_volume_is_refused) and fits a file system's name length,
    otherwise as hostile as given."""
    return value.replace("..", "._.").lstrip("/")[:80] + "☠f"


def _hostile_book(
    pc,
    v: dict[str, str],
    *,
    local: bool,
    images: bool,
    out: Path,
    env: dict[str, str] | None = None,
):
    """The runbook of the campus plan and a run, with value `v[field]` in each field."""
    pc = copy.deepcopy(pc)
    plan = pc.plan
    site = plan.sites["recovery"]
    site.docker_host = ("unix://" if local else "tcp://") + v["docker_host"]
    site.stack_prefix = v["stack_prefix"]
    site.description = v["description"]
    plan.description = v["description"]
    svc = plan.services
    svc["db"].data["pg"].user = v["pg_user"]
    svc["db"].data["pg"].databases = [v["pg_db"]]
    svc["exam"].data["maria"].user = v["maria_user"]
    svc["exam"].data["maria"].databases = [v["maria_db"]]
    svc["web"].data["files"].volume = v["volume"]
    svc["web"].data["lite"].volume = v["volume"]
    svc["web"].checks[0].url = v["http_url"]
    svc["web"].checks[0].body_contains = v["http_body"]
    svc["web"].checks[1].expect_output = v["cmd_output"]
    svc["db"].checks[0].query = v["sql_query"]
    svc["db"].checks[0].expect = v["sql_expect"]
    svc["exam"].checks[0].name = v["check_name"]
    svc["exam"].checks[1].host = v["tcp_host"]
    pc.compose.services["exam"].image = v["image"]
    pc.compose.services["web"].image = v["image"]
    repo = Repository(
        name="local",
        url=v["repo_url"],
        password=SECRET,
        options={v["opt_key"]: v["opt_value"]},
        env=env or {"AWS_ACCESS_KEY_ID": "k"},
    )

    def rec(service, source, engine, method, key, fp):
        return mf.SourceRecord.model_construct(
            service=service,
            source=source,
            engine=engine,
            method=method,
            consistency="x",
            volume=None,
            snapshot=v[f"snap_{key}"],
            path=v[f"path_{key}"],
            bytes=1,
            seconds=1.0,
            started_at="2026-01-01T00:00:00Z",
            finished_at="2026-01-01T00:00:01Z",
            fingerprint=fp,
            stats={},
        )

    tables = {f"{v['database']}.{v['table']}": {"rows": v["rows"], "checksum": "0"}}
    manifest = mf.Manifest.model_construct(
        format=1,
        plan=v["plan"],
        stack="campus",
        run_id=v["run_id"],
        host="h",
        drplan_version="0",
        started_at="2026-01-01T00:00:00Z",
        finished_at=None,
        rpo_point="2026-01-01T00:00:00Z",
        complete=True,
        errors=[],
        sources=[
            rec(
                "db",
                "pg",
                "postgresql",
                "dump",
                "pg",
                {"databases": [v["database"]], "tables": tables},
            ),
            rec(
                "exam",
                "maria",
                "mariadb",
                "dump",
                "my",
                {"databases": [v["database"]], "tables": tables},
            ),
            rec(
                "redis",
                "cache",
                "redis",
                "dump",
                "redis",
                {"keys": v["keys"], "file": v["file"], "owner": v["owner"]},
            ),
            rec(
                "web",
                "files",
                "files",
                "dump",
                "files",
                {"files": v["files"], "bytes": v["rows"], "tree": v["tree"]},
            ),
            rec(
                "web",
                "lite",
                "sqlite",
                "dump",
                "lite",
                {"file": v["file"] + "-db", "owner": v["owner"], "tables": {v["table"]: v["rows"]}},
            ),
            rec(
                "exam",
                "files",
                "files",
                "cold",
                "exam",
                {"files": v["files"], "bytes": v["rows"], "tree": v["tree"]},
            ),
        ],
        images={v["image_name"]: v["image_id"]},
        images_snapshot=v["images_snapshot"] if images else None,
        images_bytes=0,
        config_snapshot=None,
        plan_file="drplan.yml",
        compose_files=[],
        downtime_s={},
        timings={},
    )
    book = rb.build(pc, repo, manifest=manifest, drills=[])
    rb.write(book, out)
    return book, repo


def _fences(text: str) -> list[tuple[str, str]]:
    """The code blocks of a Markdown text as a CommonMark reader sees them."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    return [(t.info.strip(), t.content) for t in tokens if t.type in ("fence", "code_block")]


def _calls(log: Path) -> list[list[str]]:
    items = log.read_bytes().split(b"\0") if log.exists() else []
    calls, i = [], 0
    while i < len(items) - 1:
        n = int(items[i])
        calls.append([x.decode() for x in items[i + 1 : i + 2 + n]])
        i += 2 + n
    return calls


def _run_all(book, out: Path, stubs: Path, root: Path):
    work = root / "work"
    work.mkdir()
    (work / VICTIM).write_text("still here")
    mp = root / "volume"
    mp.mkdir()
    log = root / "argv.log"
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_MP": str(mp),
        "HOME": str(root),
        "TMPDIR": str(root),
        "LC_ALL": "C.UTF-8",
    }

    # the Markdown holds exactly the blocks the generator wrote, and no other code block
    index = _fences((out / "README.md").read_text())
    assert [info for info, _ in index] == ["sh"], index
    blocks = [index[0][1]]
    for page in book["steps"]:
        want = [t for _, t in page.blocks] + [t for _, t in page.checks]
        text = (out / page.file).read_text()
        assert _fences(text) == [("sh", t) for t in want], page.file
        blocks += want
        for _, _, alt in page.alternatives:  # one-line commands, as inline code
            assert text.count(quote.code(alt.strip())) == 1, page.file
            blocks.append(alt)

    env_dump = root / "env.log"
    blocks[0] += (
        f'printf "%s\\0" "$DOCKER_HOST" "$RESTIC_REPOSITORY" > {shlex.quote(str(env_dump))}\n'
    )
    for block in blocks:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode in (0, 1), (block, proc.stderr)  # 1: a check fails on stubs
        assert b"command not found" not in proc.stderr, (block, proc.stderr)
    assert not [p for p in root.rglob("*") if p.name == CANARY], "an injected command ran"
    assert (work / VICTIM).exists(), "an injected rm ran"
    return _calls(log), env_dump.read_bytes().split(b"\0")[:2], mp


def _check(calls, envs, mp, book, repo, v, *, local: bool, images: bool):
    stack = v["stack_prefix"] + "campus"
    restic = ["restic", f"--option={v['opt_key']}={v['opt_value']}"]
    assert [e.decode() for e in envs] == [
        ("unix://" if local else "tcp://") + v["docker_host"],
        v["repo_url"],
    ]

    def called(argv):
        assert argv in calls, (argv, [c for c in calls if c[0] == argv[0]][:40])

    # restic: options one word each, snapshot and path after `--`
    tags = f"--tag=drplan,plan:{v['plan']},run:{v['run_id']},kind:manifest"
    called([*restic, "snapshots", "--no-lock", tags])
    for key in ("pg", "my", "redis", "files", "lite", "exam"):
        called([*restic, "dump", "--no-lock", "--", v[f"snap_{key}"], v[f"path_{key}"]])
    if images:
        called([*restic, "dump", "--no-lock", "--", v["images_snapshot"], "/images.tar"])
    else:
        called(["docker", "pull", "--", v["image_name"]])
    called(["docker", "image", "inspect", "--format", "{{.Id}}", "--", v["image_name"]])
    # docker: the stack, its volumes and services
    called(
        [
            "docker",
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "--compose-file=compose/compose.yml",
            "--",
            stack,
        ]
    )
    vol = f"{stack}_{v['volume']}"
    called(["docker", "volume", "create", f"--label=com.docker.stack.namespace={stack}", "--", vol])
    for s in ("db", "redis", "web", "exam"):
        called(["docker", "service", "scale", "--detach", "--", f"{stack}_{s}=1"])
        called(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.swarm.service.name={stack}_{s}",
                "--filter",
                "status=running",
            ]
        )
    # checks: values as single arguments
    called(["docker", "exec", "-i", "c0ffee", "sh", "-s", "--", v["http_url"], "GET", "10"])
    called(["docker", "exec", "-i", "c0ffee", "sh", "-s", "--", v["tcp_host"], "5432", "10"])
    called(
        [
            "docker",
            "exec",
            "c0ffee",
            "psql",
            "-X",
            "-At",
            f"--username={v['pg_user']}",
            f"--dbname={postgresql.conninfo(v['pg_db'])}",
            f"--command={v['sql_query']}",
        ]
    )
    called(  # the image's client, mariadb or mysql, chosen in the container
        [
            "docker",
            "exec",
            "c0ffee",
            "sh",
            "-c",
            mariadb.CLIENT,
            "sh",
            f"--user={v['maria_user']}",
            "-N",
            "-B",
            f"--database={v['maria_db']}",
            "--execute=SELECT 1",
        ]
    )
    # SQL identifiers from the manifest stay identifiers
    db = v["database"]
    called(
        [
            "docker",
            "exec",
            "c0ffee",
            "psql",
            "-X",
            f"--username={v['pg_user']}",
            "--dbname=postgres",
            '--command=DROP DATABASE IF EXISTS "' + db.replace('"', '""') + '" WITH (FORCE)',
        ]
    )
    maria = [
        "docker",
        "exec",
        "-i",
        "c0ffee",
        "sh",
        "-c",
        mariadb.CLIENT,
        "sh",
        f"--user={v['maria_user']}",
    ]
    called([*maria, "--execute=DROP DATABASE IF EXISTS `" + db.replace("`", "``") + "`"])
    if local:
        called(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", "--", vol])
        called(["chown", "--", v["owner"], f"{mp}/{v['file']}"])
        lite = f"{mp}/{v['file']}-db"
        called(
            [
                "sqlite3",
                "-readonly",
                lite,
                'SELECT count(*) FROM "' + v["table"].replace('"', '""') + '"',
            ]
        )
        assert (mp / v["file"]).is_file()
    # through a container (remote engine; the alternative with a local one)
    through = [c for c in calls if c[:2] == ["docker", "run"]]
    assert len(through) == 2 and all(c[c.index("--") + 1] == v["image"] for c in through)
    assert all(c[c.index("--") - 3].startswith("--mount=type=volume,") for c in through)
    # a hostile value is never where an option could be read: always after `--`
    hostile = set(v.values())
    for call in calls:
        for i, arg in enumerate(call[1:], 1):
            if arg in hostile:
                assert "--" in call[1:i], (arg, call)


def _text(field: int):
    """A hostile value, distinct per field (so that each is told apart in the argv)."""
    chars = st.characters(codec="utf-8", exclude_characters="\x00")
    return st.tuples(
        st.sampled_from(["", *NASTY]), st.text(chars, max_size=8), st.sampled_from(NASTY)
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}☠{field}")


def _tagged(value: str) -> dict[str, str]:
    return {f: _file(value) if f == "file" else f"{value}☠{i}" for i, f in enumerate(FIELDS)}


def _rotated(k: int) -> dict[str, str]:
    v = {f: f"{NASTY[(i + k) % len(NASTY)]}☠{i}" for i, f in enumerate(FIELDS)}
    v["file"] = _file(v["file"])
    return v


@pytest.mark.slow  # seconds of runbook generation and bash runs per example
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    values=st.fixed_dictionaries(
        {f: _text(i).map(_file) if f == "file" else _text(i) for i, f in enumerate(FIELDS)}
    ),
    local=st.booleans(),
    images=st.booleans(),
)
@example(values=_tagged(SINK), local=True, images=True)
@example(values=_tagged(SINK), local=False, images=False)
@example(values=_rotated(0), local=True, images=False)
@example(values=_rotated(12), local=False, images=True)
def test_hostile_values_never_run_and_reach_commands_whole(base, values, local, images):
    pc, stubs = base
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = root / "runbook"
        book, repo = _hostile_book(pc, values, local=local, images=images, out=out)
        calls, envs, mp = _run_all(book, out, stubs, root)
        _check(calls, envs, mp, book, repo, values, local=local, images=images)
        for f in out.rglob("*"):
            if f.is_file():
                assert SECRET not in f.read_text(errors="replace"), f


def _read_back(values: list[str]) -> list[str]:
    """What bash makes of each value written with quote.sh (one word each)."""
    script = "".join(f"printf '%s\\0' {quote.sh(v)}\n" for v in values)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    )
    return [b.decode("utf-8") for b in proc.stdout.split(b"\0")[:-1]]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00")), max_size=40))
def test_sh_is_one_word_that_bash_reads_back_exactly(values):
    """Whatever the value, one word on one line, which bash (in any locale) reads back as
    exactly the value; an invisible character shows as its escape."""
    for v in values:
        word = quote.sh(v)
        assert "\n" not in word and "\r" not in word and "\u202e" not in word
    assert _read_back(values) == values


def test_known_nasty_words_read_back_by_bash():
    values = [*NASTY, SINK, "", "-", "--", "a\x01b\x1b[31m\x7fc", "'", "\\", "$'x'", "\xa0"]
    assert _read_back(values) == values
    assert quote.sh("a\u202eb") == "$'a\\xe2\\x80\\xaeb'"
    with pytest.raises(DrplanError):
        quote.sh("a\x00b")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00")))
@example("    indented code")
@example("1. a list")
@example("---")
@example("```sh")
@example("``")
def test_markdown_text_and_code_add_no_block(value):
    """Rendered mid-line or at the start of a line, a value stays one paragraph's text
    (or inline code): never a fence, an indented block, a list, a heading or HTML."""
    md = MarkdownIt("commonmark").enable("table")
    for rendered in (quote.md(value), quote.code(value), quote.code(value, table=True)):
        assert "\n" not in rendered and "\r" not in rendered
        for text in (f"x {rendered} y\n", f"{rendered}\n"):
            types = [t.type for t in md.parse(text)]
            assert types in ([], ["paragraph_open", "inline", "paragraph_close"]), (text, types)
        table = [t.type for t in md.parse(f"| a |\n|---|\n| {rendered} |\n")]
        assert table.count("td_open") == 1 and table.count("tr_open") == 2, table
    inline = md.parseInline(quote.code(value))[0].children
    assert [t.type for t in inline] == ["code_inline"]


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1)
    .map(lambda s: s.split("\\"))
    .map("/".join)
)
@example(".")
@example("../../x y,z.yml")
def test_compose_files_stay_under_compose_with_plain_names(rel):
    name = rb.compose_name(rel)
    assert name.startswith("compose/")
    parts = name.split("/")[1:]
    assert all(
        p
        and p not in (".", "..")
        and set(p) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        for p in parts
    )


def test_a_file_outside_its_volume_is_refused(base, tmp_path):
    """The runbook writes a manifest's file name under the volume's directory on the
    host: a name leaving it is refused, not written."""
    pc, _ = base
    v = _tagged("ok")
    for bad in ("../../../etc/cron.d/x", "/etc/passwd", "a/../../b"):
        v["file"] = bad
        with pytest.raises(OperationError, match="not a path inside its volume"):
            _hostile_book(pc, v, local=True, images=True, out=tmp_path / "rb")
    assert not (tmp_path / "rb").exists()


def test_environment_names_must_be_shell_names(base, tmp_path):
    """`export NAME=...` is written for each of the repository's variables: a name that
    is not a shell name is refused, not written."""
    pc, _ = base
    with pytest.raises(InputError, match="not a valid shell name"):
        _hostile_book(
            pc,
            _tagged("ok"),
            local=True,
            images=True,
            out=tmp_path / "rb",
            env={"X=$(touch PWNED)": "v"},
        )
    assert not (tmp_path / "rb").exists()
