"""Off-site copies (3-2-1) on real servers, on this host's loopback only.

- an append-only REST server (`rclone serve restic --append-only`, the role of
  rest-server --append-only): drplan refuses to prune it, and the server itself refuses
  deletions, from restic prune or plain HTTP (what ransomware holding the primary's
  credentials would try); a prune of the primary removes runs there but
  every run stays listed, complete and readable in the copy;
- a real OpenSSH server as an SFTP copy, reached through restic's `-o sftp.command`
  (the plan's `options`): repo init, copy and check against it.
S3 is not tested here: no S3 server is available on this machine (only mocks).
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from testbed import generator, plans, servers, sites

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def offsite(tmp_path_factory):
    root = tmp_path_factory.mktemp("offsite")
    with (
        servers.rest_server(root / "rest", append_only=True) as rest,
        servers.sftp_server(root / "sftp") as sftp,
    ):
        yield rest, sftp, root


def _complete(tp, repository: str | None = None) -> list[str]:
    args = ["runs", tp.path] + (["--repository", repository] if repository else [])
    return [r["run_id"] for r in plans.ok_json(*args)["runs"] if r["complete"]]


def test_append_only_and_sftp_copies_keep_every_run(testbed, tmp_path, offsite):
    rest, sftp, root = offsite
    url = testbed["primary"]
    sftp_repo = sftp.repo_url(root / "sftp-repo")
    tp = plans.adapt(
        "helpdesk",
        tmp_path,
        name=f"bkrepo{uuid.uuid4().hex[:6]}",
        copies={
            "vault": {"url": rest.url, "append_only": True},
            "partner": {"url": sftp_repo, "options": sftp.restic_options},
        },
    )
    plans.deploy(url, tp)
    try:
        generator.populate(sites.client(url), "helpdesk", tp.name, generator.Size.small())
        init = plans.ok("repo", "init", tp.path).stdout
        assert init.count("initialised") == 3 and rest.url in init and sftp_repo in init
        runs = [plans.ok_json("backup", tp.path)["run_id"] for _ in range(2)]
        copied = {r["repository"]: r for r in plans.ok_json("copy", tp.path)}
        assert copied["vault"]["copied"] == runs and copied["partner"]["copied"] == runs
        # a second copy has nothing to do
        again = {r["repository"]: r for r in plans.ok_json("copy", tp.path)}
        assert again["vault"]["already"] == runs and again["vault"]["copied"] == []

        # drplan refuses to prune the append-only copy, clearly
        proc = plans.drplan("prune", tp.path, "--repository", "vault")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "append-only" in proc.stderr and "prune is refused" in proc.stderr

        # the server itself refuses deletions, whatever the client: restic's own prune,
        # and plain HTTP DELETEs of a snapshot and of a data pack (what anyone holding the
        # primary's credentials could send; `restic forget` sends the same DELETEs, and
        # retries each refusal for about 45 s before it gives up)
        env = plans.restic_env(rest.url)
        prune = subprocess.run(["restic", "prune"], capture_output=True, text=True, env=env)
        assert prune.returncode != 0, prune.stdout
        base = rest.url.removeprefix("rest:")
        snapshot = next((rest.root / "snapshots").iterdir()).name
        pack = next(p for p in (rest.root / "data").rglob("*") if p.is_file()).name
        for kind, name in (("snapshots", snapshot), ("data", pack)):
            request = urllib.request.Request(f"{base}{kind}/{name}", method="DELETE")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 403, (kind, refused.value)
        assert (rest.root / "snapshots" / snapshot).exists()

        # the primary prunes (retention keep_daily: 7 keeps one run today): the copies
        # still hold and verify every run
        pruned = plans.ok_json("prune", tp.path)
        assert pruned["forget"] == runs[:1]
        assert _complete(tp) == runs[1:]
        assert _complete(tp, "vault") == runs
        assert _complete(tp, "partner") == runs
        for repo in ("vault", "partner"):
            check = plans.ok_json("check", tp.path, "--repository", repo)
            assert check["ok"] and check["run_id"] == runs[-1], check
        # the oldest run, gone from the primary, is still readable from the vault
        snaps = subprocess.run(
            ["restic", "snapshots", "--json", "--tag", f"run:{runs[0]}"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert '"kind:manifest"' in snaps and '"kind:dump"' in snaps
        check = subprocess.run(["restic", "check"], capture_output=True, text=True, env=env)
        assert check.returncode == 0, check.stderr
    finally:
        plans.remove(url, tp)
