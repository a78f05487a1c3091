"""The by-hand commands of each recovery step: docker and restic only, no drplan.

Each step gets `sh` blocks that run on their own (`bash -euo pipefail`, from the runbook's
directory) with DOCKER_HOST pointing at the target engine and RESTIC_REPOSITORY /
RESTIC_PASSWORD_FILE set: no password ever appears in the runbook. They do what
drplan's recovery does (see drplan.actions.recover and drplan.sources), in the order of
the schedule: deploy the stack at zero replicas, put files back into fresh volumes before
their service starts, replay database dumps into the running server, scale services up
in dependency order, wait for health, run the checks and compare with the backup.

What is engine-specific (restoring and verifying a data source, an SQL check's client)
comes from the source's engine in :mod:`drplan.sources` (``Engine.runbook_restore``,
``Engine.runbook_verify``, ``Engine.sql_command``), given this generator as its
:class:`~drplan.sources.base.ShellKit`; this module writes the rest.

Every value in a block (from the plan, and from the run's manifest, which comes from a
repository an attacker may have written to) is one quoted shell word (:func:`sh`), SQL
identifiers are quoted as identifiers (by each engine), and values that a command takes
as positional arguments come after ``--`` (option values are written
``--option=value``), so that a value starting with ``-`` is never read as an option. No
heredoc holds a value: the only heredocs feed drplan's own constant scripts (checked
against their delimiters).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from drplan.errors import DrplanError, OperationError
from drplan.plan import model as m
from drplan.plan.loaded import LoadedPlan
from drplan.runbook.quote import sh, sh_join
from drplan.schedule.steps import Step, StepKind
from drplan.sources import checks as chk
from drplan.sources import registry
from drplan.sources.base import Procedure, SourceOps
from drplan.store import manifest as mf
from drplan.store.restic import Repository

SERVICE_LABEL = "com.docker.swarm.service.name"
STACK_LABEL = "com.docker.stack.namespace"
MOUNTPOINT = "'{{.Mountpoint}}'"


@dataclass
class StepCommands:
    purpose: str
    blocks: list[tuple[str, str]]  # (caption, sh text)
    checks: list[tuple[str, str]]
    # what to run instead of `blocks` in another situation: (when, caption, one-line sh
    # text), shown as inline code so that running every block in order stays right
    alternatives: list[tuple[str, str, str]] = field(default_factory=list)


def heredoc(delimiter: str, body: str) -> str:
    """``<<'DELIM'`` + body + the delimiter, for drplan's own constant scripts only: the
    body must not hold a line equal to the delimiter, which would end it early."""
    if delimiter in body.split("\n"):
        raise ValueError(f"a heredoc body holds its delimiter {delimiter}")
    return f"<<'{delimiter}'\n{body}\n{delimiter}\n"


HTTP_HEREDOC = heredoc("DRPLAN_HTTP", chk.HTTP_SCRIPT.strip())
TCP_HEREDOC = heredoc("DRPLAN_TCP", chk.TCP_SCRIPT.strip())


class Generator:
    def __init__(
        self,
        pc: LoadedPlan,
        repo: Repository,
        run: mf.Manifest,
        site: m.Site,
        stack: str,
        services: list[str],
        compose_files: list[str],
    ) -> None:
        self.pc, self.repo, self.run, self.site = pc, repo, run, site
        self.stack, self.services, self.compose_files = stack, services, compose_files
        # `--option=k=v`, one word each: a key or value starting with `-` stays the value
        self.restic = " ".join(
            ["restic", *(sh(f"--option={k}={v}") for k, v in sorted(repo.options.items()))]
        )
        self.local = site.docker_host.startswith("unix://")

    # -- helpers ------------------------------------------------------------------------

    def volume(self, name: str) -> str:
        return self.pc.volume_name(self.stack, name)

    def svc(self, service: str) -> str:
        return f"{self.stack}_{service}"

    def dump(self, snapshot: str, path: str) -> str:
        """restic writing one file of a snapshot to stdout."""
        return f"{self.restic} dump --no-lock -- {sh(snapshot)} {sh(path)}"

    def running(self, service: str) -> str:
        """`docker ps` listing the running containers of a service (in `$(...)`)."""
        label = sh(f"label={SERVICE_LABEL}={self.svc(service)}")
        return f"docker ps -q --filter {label} --filter status=running"

    def container(self, service: str) -> str:
        full = sh(self.svc(service))
        return (
            f"C=$({self.running(service)})\n"
            "C=${C%%$'\\n'*}  # the first one\n"
            f"[ -n \"$C\" ] || {{ printf 'no running container of %s\\n' {full} >&2; exit 1; }}\n"
        )

    def mountpoint(self, volume: str) -> str:
        """`MP` set to the volume's directory on this host, or the block stops (never an
        empty MP: `"$MP"/file` would then be a file of the host's root)."""
        v = sh(volume)
        return (
            f"MP=$(docker volume inspect --format {MOUNTPOINT} -- {v})\n"
            f'[ -n "$MP" ] && [ -d "$MP" ] || '
            f"{{ printf 'volume %s has no directory on this host\\n' {v} >&2; exit 1; }}\n"
        )

    def volume_file(self, service: str, source: str, rel: object) -> str:
        """A file name from the manifest, relative to its volume: refused when it leaves
        the volume (absolute, or with a `..`), since the runbook writes it on the host."""
        text = str(rel)
        parts = text.split("/")
        if not text or text.startswith("/") or ".." in parts or posixpath.normpath(text) == ".":
            raise OperationError(
                f"the run's manifest gives {service}/{source} the file {text[:80]!r}, which is "
                "not a path inside its volume: refusing to write a runbook that writes it",
                where=f"run {self.run.run_id}",
            )
        return text

    # -- the rest of the ShellKit engines get (drplan.sources.base.ShellKit) ---------------

    @staticmethod
    def sh(value: object) -> str:
        return sh(value)

    @staticmethod
    def sh_join(argv: list[str]) -> str:
        return sh_join(argv)

    def image(self, service: str) -> str | None:
        compose_svc = self.pc.compose.services.get(service)
        return compose_svc.image if compose_svc else None

    def expect(self, cmd: str, value: object, label: str) -> str:
        return (
            f"got=$({cmd})\n"
            f'[ "$got" = {sh(value)} ] || '
            f"{{ printf '%s, found %s\\n' {sh(f'{label}: expected {value}')} \"$got\" >&2; "
            "exit 1; }\n"
        )

    def _operations(self, rec: mf.SourceRecord) -> SourceOps | None:
        """What restores and verifies the recorded source (None: an engine this drplan
        does not know, e.g. a run written by another version)."""
        try:
            return registry.operations(rec.engine, rec.method)
        except DrplanError:
            return None

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
                    f"found=$({self.restic} snapshots --no-lock {sh('--tag=' + tags)})\n"
                    'grep -qF complete:yes <<<"$found"\n',
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

    def _image_calls(self, function: str) -> str:
        return "".join(f"{function} {sh(n)} {sh(i)}\n" for n, i in sorted(self.run.images.items()))

    def load_images(self) -> StepCommands:
        run = self.run
        # each image is one call with two quoted words: no list of names in a heredoc that
        # a name could end, no `read` splitting a name on its spaces
        verify = (
            "bad=0\n"
            "check_image() {\n"
            "  got=$(docker image inspect --format '{{.Id}}' -- \"$1\" 2>/dev/null || true)\n"
            '  if [ "$got" != "$2" ]; then\n'
            '    printf \'image %s is %s, expected %s\\n\' "$1" "${got:-missing}" "$2" >&2\n'
            "    bad=1\n"
            "  fi\n"
            "}\n" + self._image_calls("check_image") + '[ "$bad" = 0 ]\n'
        )
        if not run.images_snapshot:
            pulls = "".join(f"docker pull -- {sh(n)}\n" for n in sorted(run.images))
            return StepCommands(
                "The run holds no images: pull them from your registry.",
                [("Pull the images", pulls or "true\n")],
                [("Each image has the id the run recorded", verify)],
            )
        load = (
            "missing=0\n"
            "has_image() {\n"
            "  got=$(docker image inspect --format '{{.Id}}' -- \"$1\" 2>/dev/null || true)\n"
            '  [ "$got" = "$2" ] || missing=1\n'
            "}\n" + self._image_calls("has_image") + 'if [ "$missing" = 1 ]; then\n'
            f"  {self.dump(run.images_snapshot, '/images.tar')} | docker load\n"
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
        label = sh(f"--label={STACK_LABEL}={self.stack}")
        create = "".join(f"docker volume create {label} -- {sh(v)}\n" for v in vols)
        files = " ".join(sh(f"--compose-file={f}") for f in self.compose_files)
        deploy = f"docker stack deploy --resolve-image never {files} -- {sh(self.stack)}\n"
        listing = "".join(
            f"docker service inspect --format '{{{{.Spec.Name}}}}' -- {sh(self.svc(s))} "
            ">/dev/null\n"
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

    def node_note(self, service: str) -> str:
        """Which node of a multi-node site the step runs on: the one holding (or chosen
        for) the service's local data, reached by its own Docker endpoint."""
        if not self.site.nodes:
            return ""
        compose_svc = self.pc.compose.services.get(service)
        constraints = self.site.placement.get(
            service, list(compose_svc.placement) if compose_svc else []
        )
        where = " and ".join(constraints) or "none"
        return (
            f" Run it on the node that runs (or will run) service {service} (docker service "
            f"ps {self.svc(service)} shows it; its placement on this site: {where}), with "
            "DOCKER_HOST set to that node's engine (the site's nodes): a local volume exists "
            "only on its node."
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
        ops = self._operations(rec)
        if ops is None:
            return StepCommands(
                f"No by-hand procedure for {service}/{source}: this drplan does not know "
                f"engine {rec.engine!r}.",
                [],
                [],
            )
        done = _commands(ops.runbook_restore(self, service, source, spec, rec))
        done.purpose += self.node_note(service)
        return done

    def replicas(self, service: str) -> int:
        override = self.site.services.get(service)
        compose_svc = self.pc.compose.services.get(service)
        if override and override.replicas is not None:
            return override.replicas
        if compose_svc and compose_svc.replicas is not None:
            return max(compose_svc.replicas, 1)
        return 1

    def start(self, service: str) -> StepCommands:
        n = int(self.replicas(service))
        full = self.svc(service)
        return StepCommands(
            f"Start {service} ({n} replica(s)): its data and its dependencies are back.",
            [("Scale the service up", f"docker service scale --detach -- {sh(f'{full}={n}')}\n")],
            [
                (
                    "The service asks for its replicas",
                    '[ "$(docker service inspect --format '
                    f"'{{{{.Spec.Mode.Replicated.Replicas}}}}' -- {sh(full)})\" = {n} ]\n",
                )
            ],
        )

    def health(self, step: Step) -> StepCommands:
        service = step.service or ""
        full = sh(self.svc(service))
        wait = (
            f"deadline=$(( $(date +%s) + {int(step.timeout_s)} ))\n"
            "while :; do\n"
            f"  C=$({self.running(service)})\n"
            "  C=${C%%$'\\n'*}\n"
            '  if [ -n "$C" ]; then\n'
            "    h=$(docker inspect --format "
            "'{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' -- \"$C\" "
            "|| true)\n"
            '    if [ "$h" = healthy ] || [ "$h" = none ]; then break; fi\n'
            "  fi\n"
            f'  [ "$(date +%s)" -lt "$deadline" ] || '
            f"{{ printf '%s is not healthy in time\\n' {full} >&2; exit 1; }}\n"
            "  sleep 2\n"
            "done\n"
            f"printf '%s is up (%s)\\n' {full} \"$C\"\n"
        )
        svc = self.pc.plan.services[service]
        blocks = [("Wait until a container runs and is healthy", wait)]
        if svc.health is not None and not isinstance(svc.health, m.DockerCheck):
            blocks.append((f"Health: {chk.describe(svc.health)}", self.check(service, svc.health)))
        return StepCommands(f"Wait until {service} is healthy.", blocks, [])

    def validate(self, step: Step) -> StepCommands:
        service = step.service or ""
        svc = self.pc.plan.services[service]
        blocks = [
            (f"Check: {chk.describe(c)}", self.check(service, c))
            for c in svc.checks
            if not isinstance(c, m.DockerCheck)
        ]
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
            f"[ \"$ok\" = 1 ] || {{ printf '%s\\n' {sh('check failed: ' + chk.describe(check))} "
            ">&2; exit 1; }\n"
        )

    def check(self, service: str, check) -> str:
        c = self.container(service)
        if isinstance(check, m.HttpCheck):
            args = sh_join([check.url, check.method, str(int(check.timeout))])
            body = (
                f'  out=$(docker exec -i "$C" sh -s -- {args} {HTTP_HEREDOC}'
                "  ) || return 1\n"
                "  status=${out%%$'\\n'*}\n"
                f'  [ "$status" = {sh(check.status)} ] || return 1\n'
            )
            if check.body_contains:
                body += f'  grep -qF -- {sh(check.body_contains)} <<<"$out" || return 1\n'
            return c + self._retry(body, check)
        if isinstance(check, m.TcpCheck):
            args = sh_join([check.host, str(int(check.port)), str(int(check.timeout))])
            body = f'  docker exec -i "$C" sh -s -- {args} {TCP_HEREDOC}'
            return c + self._retry(body, check)
        if isinstance(check, m.SqlCheck):
            found = chk.sql_source(self.pc.plan.services[service], check)
            command = found[2].sql_command(found[1], check.query) if found else None
            if found is None or command is None:
                return "true  # no database source for this SQL check\n"
            src = found[1]
            pw = command.password_env if src.password is not None else None
            note = f"# the database password: export {pw} first (from your secret store)\n"
            q = f'docker exec{" -e " + pw if pw else ""} "$C" ' + sh_join(command.argv)
            body = f"  got=$({q}) || return 1\n"
            if check.expect is not None:
                body += f'  [ "$got" = {sh(check.expect.strip())} ] || return 1\n'
            return (note if pw else "") + c + self._retry(body, check)
        if isinstance(check, m.CommandCheck):
            argv = check.command if isinstance(check.command, list) else ["sh", "-c", check.command]
            cmd = sh_join(argv)
            run = cmd if check.where == "host" else f'docker exec "$C" {cmd}'
            body = (
                f"  code=0; out=$({run}) || code=$?\n"
                f'  [ "$code" = {sh(check.expect_exit)} ] || return 1\n'
            )
            if check.expect_output:
                body += f'  grep -qF -- {sh(check.expect_output)} <<<"$out" || return 1\n'
            return (c if check.where != "host" else "") + self._retry(body, check)
        return "true\n"

    def verification(self, service: str, source: str, rec: mf.SourceRecord) -> str:
        """Shell lines comparing the recovered source with the backup (its engine's)."""
        ops = self._operations(rec)
        if ops is None:
            return ""
        spec = self.pc.plan.services[service].data[source]
        return ops.runbook_verify(self, service, source, spec, rec)


def _commands(p: Procedure) -> StepCommands:
    return StepCommands(p.purpose, p.blocks, p.checks, p.alternatives)
