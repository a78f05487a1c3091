"""The by-hand commands of each recovery step: docker and restic only, no drplan.

Each step gets `sh` blocks that run on their own (`bash -euo pipefail`, from the runbook's
directory) with DOCKER_HOST pointing at the target engine and RESTIC_REPOSITORY /
RESTIC_PASSWORD_FILE set: no password ever appears in the runbook. They do what
drplan's recovery does (see drplan.actions.recover and drplan.sources), in the order of
the schedule: deploy the stack at zero replicas, put files back into fresh volumes before
their service starts, replay database dumps into the running server, scale services up
in dependency order, wait for health, run the checks and compare with the backup.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from drplan import manifest as mf
from drplan.actions import checks as chk
from drplan.actions.context import PlanContext
from drplan.plan import model as m
from drplan.repository.restic import Repository
from drplan.schedule.steps import Step, StepKind

SERVICE_LABEL = "com.docker.swarm.service.name"
STACK_LABEL = "com.docker.stack.namespace"


@dataclass
class StepCommands:
    purpose: str
    blocks: list[tuple[str, str]]  # (caption, sh text)
    checks: list[tuple[str, str]]


class Generator:
    def __init__(
        self,
        pc: PlanContext,
        repo: Repository,
        run: mf.Manifest,
        site: m.Site,
        stack: str,
        services: list[str],
        compose_files: list[str],
    ) -> None:
        self.pc, self.repo, self.run, self.site = pc, repo, run, site
        self.stack, self.services, self.compose_files = stack, services, compose_files
        self.restic = shlex.join(["restic", *repo.option_args()])
        self.local = site.docker_host.startswith("unix://")

    # -- helpers ------------------------------------------------------------------------

    def q(self, s: str) -> str:
        return shlex.quote(s)

    def volume(self, name: str) -> str:
        return self.pc.volume_name(self.stack, name)

    def svc(self, service: str) -> str:
        return f"{self.stack}_{service}"

    def container(self, service: str) -> str:
        full = self.svc(service)
        return (
            f"C=$(docker ps -q -f label={SERVICE_LABEL}={full} -f status=running)\n"
            "C=${C%%$'\\n'*}  # the first one\n"
            f'[ -n "$C" ] || {{ echo "no running container of {full}" >&2; exit 1; }}\n'
        )

    def mountpoint(self, volume: str) -> str:
        return f"MP=$(docker volume inspect --format '{{{{.Mountpoint}}}}' {self.q(volume)})\n"

    # -- per kind -----------------------------------------------------------------------

    def for_step(self, step: Step) -> StepCommands:
        kind = step.kind
        if kind is StepKind.PREPARE_SITE:
            return self.prepare_site()
        if kind is StepKind.LOAD_IMAGES:
            return self.load_images()
        if kind is StepKind.CREATE_VOLUMES:
            return self.create_volumes()
        if kind is StepKind.RESTORE:
            return self.restore(step.service or "", step.source or "")
        if kind is StepKind.START:
            return self.start(step.service or "")
        if kind is StepKind.HEALTH:
            return self.health(step)
        return self.validate(step)

    def prepare_site(self) -> StepCommands:
        run = self.run
        tags = f"drplan,plan:{run.plan},run:{run.run_id},kind:manifest"
        return StepCommands(
            "Check that the repository opens and holds the run, and that the target engine "
            "is in Swarm mode.",
            [
                (
                    "The repository opens with the password file and holds the run",
                    f"found=$({self.restic} snapshots --no-lock --tag {self.q(tags)})\n"
                    f"grep -qF {self.q('complete:yes')} <<<\"$found\"\n",
                ),
                (
                    "Swarm mode on the target engine (once per site)",
                    "if [ \"$(docker info --format '{{.Swarm.LocalNodeState}}')\" != active ]; "
                    "then\n  docker swarm init  # add --advertise-addr ADDRESS if docker asks\n"
                    "fi\n",
                ),
            ],
            [
                (
                    "The engine answers and is a Swarm manager",
                    "[ \"$(docker info --format '{{.Swarm.ControlAvailable}}')\" = true ]\n",
                )
            ],
        )

    def load_images(self) -> StepCommands:
        run = self.run
        pairs = "".join(f"{n} {i}\n" for n, i in sorted(run.images.items()))
        verify = (
            "while read -r name id; do\n"
            "  got=$(docker image inspect --format '{{.Id}}' \"$name\" 2>/dev/null || true)\n"
            '  [ "$got" = "$id" ] || { echo "image $name is $got, expected $id" >&2; exit 1; }\n'
            f"done <<'IMAGES'\n{pairs}IMAGES\n"
        )
        if not run.images_snapshot:
            pulls = "".join(f"docker pull {self.q(n)}\n" for n in sorted(run.images))
            return StepCommands(
                "The run holds no images: pull them from your registry.",
                [("Pull the images", pulls or "true\n")],
                [("Each image has the id the run recorded", verify)],
            )
        load = (
            "missing=0\n"
            "while read -r name id; do\n"
            "  got=$(docker image inspect --format '{{.Id}}' \"$name\" 2>/dev/null || true)\n"
            '  [ "$got" = "$id" ] || missing=1\n'
            f"done <<'IMAGES'\n{pairs}IMAGES\n"
            'if [ "$missing" = 1 ]; then\n'
            f"  {self.restic} dump --no-lock {run.images_snapshot} /images.tar | docker load\n"
            "fi\n"
        )
        return StepCommands(
            "Load the stack's images saved with the run (only when the engine lacks one), so "
            "the recovery needs no registry.",
            [("Load the run's images if any is missing", load)],
            [("Each image has the id the run recorded", verify)],
        )

    def create_volumes(self) -> StepCommands:
        vols = []
        for svc in self.services:
            for spec in self.pc.plan.services[svc].data.values():
                if spec.volume and self.volume(spec.volume) not in vols:
                    vols.append(self.volume(spec.volume))
        create = "".join(
            f"docker volume create --label {STACK_LABEL}={self.stack} {self.q(v)}\n" for v in vols
        )
        files = " ".join(f"-c {self.q(f)}" for f in self.compose_files)
        deploy = f"docker stack deploy --resolve-image never {files} {self.q(self.stack)}\n"
        listing = "".join(
            f"docker service inspect --format '{{{{.Spec.Name}}}}' {self.svc(s)} >/dev/null\n"
            for s in self.services
        )
        return StepCommands(
            "Create the data volumes empty, then define the stack (networks, secrets, configs, "
            "services) with every service at 0 replicas: services are started later, one "
            "dependency level at a time, once their data is back. The compose file(s) in "
            "compose/ are the plan's, with replicas 0 and without depends_on.",
            ([("Empty data volumes", create)] if create else [])
            + [("The stack at zero replicas (run from the runbook's directory)", deploy)],
            [("Every service of the stack is defined", listing or "true\n")],
        )

    def restore(self, service: str, source: str) -> StepCommands:
        spec = self.pc.plan.services[service].data[source]
        rec = self.run.source(service, source)
        if rec is None:
            return StepCommands(
                f"The run holds no backup of {service}/{source}: nothing to restore.",
                [("Nothing to do", "true\n")],
                [],
            )
        snap, path, fp = rec.snapshot, rec.path, rec.fingerprint
        what = f"{service}/{source} ({rec.engine}, {rec.method})"
        engine = "mariadb" if rec.engine == "mysql" else rec.engine
        if rec.method == "cold" or engine == "files":
            vol = self.volume(spec.volume or "")
            compose_svc = self.pc.compose.services.get(service)
            image = (compose_svc.image if compose_svc else None) or "IMAGE-WITH-TAR"
            through = (
                f"{self.restic} dump --no-lock {snap} {path} | docker run --rm -i "
                f"--network none -v {vol}:/volume --entrypoint tar {self.q(image)} "
                "-x -C /volume --numeric-owner --strip-components=1\n"
            )
            direct = (
                self.mountpoint(vol)
                + f'{self.restic} dump --no-lock {snap} {path} | tar -x -C "$MP" '
                "--numeric-owner --strip-components=1\n"
            )
            blocks = (
                [("Extract the snapshot into the volume (the engine is on this host)", direct)]
                if self.local
                else [("Extract the snapshot into the volume through a container", through)]
            )
            return StepCommands(
                f"Put the files of {what} back into the empty volume {vol} before the service "
                f"starts (snapshot {snap}: {fp.get('files')} files, {fp.get('bytes')} bytes)."
                + (" With a remote engine, extract through a container instead: "
                   f"`{through.strip()}`." if self.local else ""),
                blocks,
                [],
            )
        if engine in ("redis", "sqlite"):
            vol = self.volume(spec.volume or "")
            rel = fp.get("file") or ("dump.rdb" if engine == "redis" else "data.db")
            target = f'"$MP"/{self.q(rel)}'
            extra = f'rm -f {target}-wal {target}-shm\n' if engine == "sqlite" else ""
            cmd = (
                self.mountpoint(vol)
                + f'mkdir -p "$(dirname {target})"\n'
                + extra
                + f"{self.restic} dump --no-lock {snap} {path} > {target}.drplan\n"
                + f"mv {target}.drplan {target}\n"
                + (f"chown {self.q(fp['owner'])} {target}\n" if fp.get("owner") else "")
            )
            kind = "the RDB file, which Redis loads" if engine == "redis" else "the database file"
            return StepCommands(
                f"Put {kind} of {what} into the empty volume {vol} before the service starts "
                f"(snapshot {snap}).",
                [("Write the file into the volume (engine on this host)", cmd)],
                [("The file is there", f'{self.mountpoint(vol)}test -s {target}\n')],
            )
        if engine == "postgresql":
            user = spec.user or "postgres"
            drop_sql = 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)'
            drops = "".join(
                f'docker exec "$C" psql -X -U {self.q(user)} -d postgres -c '
                f"{self.q(drop_sql.format(db))}\n"
                for db in fp.get("databases", [])
                if db not in ("postgres", "template0", "template1")
            )
            replay = (
                'err=$(mktemp)\n'
                f"{self.restic} dump --no-lock {snap} {path} | docker exec -i \"$C\" psql -X -q "
                f"-U {self.q(user)} -d postgres -v ON_ERROR_STOP=0 >/dev/null 2>\"$err\"\n"
                "if grep 'ERROR:' \"$err\" | grep -v 'role \".*\" already exists'; then\n"
                '  echo "psql reported errors (see $err)" >&2; exit 1\n'
                "fi\n"
            )
            return StepCommands(
                f"Replay the dump of {what} into the running server of {service} (its own "
                "image, configuration and network): drop the databases the image created, "
                "then feed the dump (roles first, then each database) to psql. 'role already "
                "exists' errors are expected; any other error fails the step.",
                [("Drop the databases the image created, replay the dump",
                  self.container(service) + drops + replay)],
                [],
            )
        if engine == "mariadb":
            auth = ["-u", spec.user] if spec.user else []
            pw = " -e MYSQL_PWD" if spec.password is not None else ""
            client = (
                f"docker exec{pw} -i \"$C\" sh -c "
                "'exec \"$(command -v mariadb || command -v mysql)\" \"$@\"' sh"
                + "".join(" " + self.q(a) for a in auth)
            )
            drops = "".join(
                f"{client} -e {self.q(f'DROP DATABASE IF EXISTS `{db}`')}\n"
                for db in fp.get("databases", [])
            )
            note = (
                "# the database password: export MYSQL_PWD first (from your secret store)\n"
                if pw else ""
            )
            replay = f"{self.restic} dump --no-lock {snap} {path} | {client}\n"
            return StepCommands(
                f"Replay the dump of {what} into the running server of {service}: drop the "
                "databases the image created, then feed the dump to the client.",
                [("Drop the databases, replay the dump",
                  note + self.container(service) + drops + replay)],
                [],
            )
        return StepCommands(f"No by-hand procedure for {what}.", [], [])

    def replicas(self, service: str) -> int:
        override = self.site.services.get(service)
        compose_svc = self.pc.compose.services.get(service)
        if override and override.replicas is not None:
            return override.replicas
        if compose_svc and compose_svc.replicas is not None:
            return max(compose_svc.replicas, 1)
        return 1

    def start(self, service: str) -> StepCommands:
        n = self.replicas(service)
        full = self.svc(service)
        return StepCommands(
            f"Start {service} ({n} replica(s)): its data and its dependencies are back.",
            [("Scale the service up", f"docker service scale --detach {full}={n}\n")],
            [(
                "The service asks for its replicas",
                "[ \"$(docker service inspect --format "
                f"'{{{{.Spec.Mode.Replicated.Replicas}}}}' {full})\" = {n} ]\n",
            )],
        )

    def health(self, step: Step) -> StepCommands:
        service = step.service or ""
        full = self.svc(service)
        wait = (
            f"deadline=$(( $(date +%s) + {int(step.timeout_s)} ))\n"
            "while :; do\n"
            f"  C=$(docker ps -q -f label={SERVICE_LABEL}={full} -f status=running)\n"
            "  C=${C%%$'\\n'*}\n"
            '  if [ -n "$C" ]; then\n'
            "    h=$(docker inspect --format "
            "'{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \"$C\" "
            "|| true)\n"
            '    if [ "$h" = healthy ] || [ "$h" = none ]; then break; fi\n'
            "  fi\n"
            f'  [ "$(date +%s)" -lt "$deadline" ] || {{ echo "{full} is not healthy in time"'
            " >&2; exit 1; }\n"
            "  sleep 2\n"
            "done\n"
            f'echo "{full} is up ($C)"\n'
        )
        svc = self.pc.plan.services[service]
        blocks = [("Wait until a container runs and is healthy", wait)]
        if svc.health is not None and not isinstance(svc.health, m.DockerCheck):
            blocks.append((f"Health: {chk.describe(svc.health)}", self.check(service, svc.health)))
        return StepCommands(f"Wait until {service} is healthy.", blocks, [])

    def validate(self, step: Step) -> StepCommands:
        service = step.service or ""
        svc = self.pc.plan.services[service]
        blocks = [(f"Check: {chk.describe(c)}", self.check(service, c))
                  for c in svc.checks if not isinstance(c, m.DockerCheck)]
        verify = []
        for source in svc.data:
            rec = self.run.source(service, source)
            if rec is not None:
                text = self.verification(service, source, rec)
                if text:
                    verify.append((f"Compare {source} with the backup", text))
        return StepCommands(
            f"Validate {service}: its checks pass and its data equals the backup "
            f"(run {self.run.run_id}).",
            blocks,
            verify,
        )

    # -- checks and verification -----------------------------------------------------------

    def _retry(self, body: str, check) -> str:
        return (
            f"attempt() {{\n{body}}}\n"
            "ok=0\n"
            f"for i in $(seq 1 {int(check.retries)}); do\n"
            "  if attempt; then ok=1; break; fi\n"
            f"  sleep {int(check.interval)}\n"
            "done\n"
            f'[ "$ok" = 1 ] || {{ echo {self.q("check failed: " + chk.describe(check))} >&2; '
            "exit 1; }\n"
        )

    def check(self, service: str, check) -> str:
        c = self.container(service)
        if isinstance(check, m.HttpCheck):
            body = (
                "  out=$(docker exec -i \"$C\" sh -s "
                f"{self.q(check.url)} {check.method} {int(check.timeout)} <<'DRPLAN_HTTP'\n"
                f"{chk.HTTP_SCRIPT.strip()}\nDRPLAN_HTTP\n  ) || return 1\n"
                "  status=${out%%$'\\n'*}\n"
                f'  [ "$status" = {check.status} ] || return 1\n'
            )
            if check.body_contains:
                body += f'  grep -qF -- {self.q(check.body_contains)} <<<"$out" || return 1\n'
            return c + self._retry(body, check)
        if isinstance(check, m.TcpCheck):
            body = (
                "  docker exec -i \"$C\" sh -s "
                f"{self.q(check.host)} {check.port} {int(check.timeout)} <<'DRPLAN_TCP'\n"
                f"{chk.TCP_SCRIPT.strip()}\nDRPLAN_TCP\n"
            )
            return c + self._retry(body, check)
        if isinstance(check, m.SqlCheck):
            src = self.pc.plan.services[service].data
            sources = [s for n, s in src.items()
                       if s.engine in ("postgresql", "mariadb", "mysql")
                       and (not check.source or n == check.source)]
            if not sources:
                return "true  # no database source for this SQL check\n"
            s = sources[0]
            if s.engine == "postgresql":
                db = s.databases[0] if s.databases else "postgres"
                q = (f"docker exec \"$C\" psql -X -At -U {self.q(s.user or 'postgres')} "
                     f"-d {self.q(db)} -c {self.q(check.query)}")
            else:
                q = (f"docker exec \"$C\" mariadb -N -B "
                     f"{'-u ' + self.q(s.user) + ' ' if s.user else ''}"
                     f"{self.q(s.databases[0]) + ' ' if s.databases else ''}"
                     f"-e {self.q(check.query)}")
            body = f"  got=$({q}) || return 1\n"
            if check.expect is not None:
                body += f'  [ "$got" = {self.q(check.expect.strip())} ] || return 1\n'
            return c + self._retry(body, check)
        if isinstance(check, m.CommandCheck):
            argv = check.command if isinstance(check.command, list) else ["sh", "-c", check.command]
            cmd = shlex.join(argv)
            run = cmd if check.where == "host" else f'docker exec "$C" {cmd}'
            body = (
                f"  code=0; out=$({run}) || code=$?\n"
                f'  [ "$code" = {check.expect_exit} ] || return 1\n'
            )
            if check.expect_output:
                body += f'  grep -qF -- {self.q(check.expect_output)} <<<"$out" || return 1\n'
            return (c if check.where != "host" else "") + self._retry(body, check)
        return "true\n"

    def verification(self, service: str, source: str, rec: mf.SourceRecord) -> str:
        fp = rec.fingerprint
        spec = self.pc.plan.services[service].data[source]
        engine = "mariadb" if rec.engine == "mysql" else rec.engine
        lines = []

        def expect(cmd: str, value, label: str) -> None:
            msg = self.q(f"{label}: expected {value}")
            lines.append(
                f"got=$({cmd})\n"
                f'[ "$got" = {self.q(str(value))} ] || '
                f'{{ echo {msg}", found $got" >&2; exit 1; }}\n'
            )

        if rec.method == "cold" or engine == "files":
            if not self.local:
                return ""
            lines.append(self.mountpoint(self.volume(spec.volume or "")))
            expect("cd \"$MP\" && find . -type f | wc -l", fp.get("files"), "files")
            expect(
                "cd \"$MP\" && find . -type f -printf '%P\\t%s\\n' | LC_ALL=C sort | sha256sum "
                "| cut -d' ' -f1",
                fp.get("tree"),
                "paths and sizes",
            )
        elif engine == "postgresql":
            lines.append(self.container(service))
            user = self.q(spec.user or "postgres")
            for key, t in sorted(fp.get("tables", {}).items()):
                db, _, table = key.partition(".")
                expect(f"docker exec \"$C\" psql -X -At -U {user} -d {self.q(db)} -c "
                       f"{self.q('SELECT count(*) FROM ' + table)}", t["rows"], f"rows of {key}")
        elif engine == "mariadb":
            lines.append(self.container(service))
            auth = f"-u {self.q(spec.user)} " if spec.user else ""
            pw = "-e MYSQL_PWD " if spec.password is not None else ""
            for key, t in sorted(fp.get("tables", {}).items()):
                db, _, table = key.partition(".")
                sql = f"SELECT COUNT(*) FROM `{db}`.`{table}`"
                expect(f"docker exec {pw}\"$C\" sh -c "
                       "'exec \"$(command -v mariadb || command -v mysql)\" \"$@\"' sh "
                       f"{auth}-N -B -e {self.q(sql)}", t["rows"], f"rows of {key}")
        elif engine == "redis" and fp.get("keys") is not None:
            lines.append(self.container(service))
            expect('docker exec "$C" redis-cli --no-auth-warning DBSIZE', fp["keys"], "keys")
        elif engine == "sqlite" and self.local:
            lines.append(self.mountpoint(self.volume(spec.volume or "")))
            db = f'"$MP"/{self.q(fp.get("file") or posixpath.basename(spec.path or ""))}'
            for table, n in sorted(fp.get("tables", {}).items()):
                sql = f'SELECT count(*) FROM "{table}"'
                expect(f"sqlite3 -readonly {db} {self.q(sql)}", n, f"rows of {table}")
        return "".join(lines)
