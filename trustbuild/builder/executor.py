"""The stage executor: plans the stages ``--target`` needs, resolves images, runs instructions.

Flow (``Executor.run``): global ARGs -> expand every FROM -> stages needed by the target (FROM an
earlier stage, ``COPY --from``) -> resolve every external image to a digest -> (a gate) ->
per stage: run ONBUILD triggers of the base, then each instruction's handler
(``trustbuild.builder.handlers``), which updates the :class:`ImageState`. A stage's rootfs is
materialised (its layers extracted) only when a step has to run on it or another stage reads it
(``Executor.materialize``): with ``--cache`` a build whose every step hits extracts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.secrets import redact_text
from trustbuild._internal.topdir import fresh_name
from trustbuild.builder.base import BaseImages, ResolvedBase, extract_image
from trustbuild.builder.cache import LayerCache, cache_repo_for
from trustbuild.builder.cachekey import CacheKeySpec, SourceHasher, root_key, step_key
from trustbuild.builder.commands import (
    AnyCommand,
    ArgCmd,
    Command,
    CopyCmd,
    EnvCmd,
    Expander,
    RunCmd,
)
from trustbuild.builder.config import ImageState, LayerRef, rfc3339
from trustbuild.builder.context import BuildContext
from trustbuild.builder.dockerfile import Dockerfile, Stage
from trustbuild.builder.expand import expand, expand_heredoc, expand_words
from trustbuild.builder.layers import LayerSettings
from trustbuild.builder.layerstore import LayerStore
from trustbuild.builder.mounts import SECRET_TYPES, MountSpec, mount_from_refs, number_ssh_targets
from trustbuild.builder.mounts import parse_mount as parse_mount_value
from trustbuild.builder.options import BuildOptions, ExecMode
from trustbuild.builder.overlayroot import OverlayRoots, OverlayUnavailable
from trustbuild.builder.record import BuildRecord, ResolvedImage, StepRecord
from trustbuild.builder.secretmounts import missing_message
from trustbuild.builder.sshagent import SshAgents
from trustbuild.errors import DockerfileError, TrustbuildError
from trustbuild.oci.descriptor import Platform
from trustbuild.sandbox.spec import Runner

if TYPE_CHECKING:
    from trustbuild.builder.container_fs import ContainerFS, SavedStage

__all__ = ["ExecMode", "Executor", "StageRun", "Runner", "predefined_args"]



def predefined_args(target: Platform, build: Platform) -> dict[str, str]:
    """TARGETPLATFORM, TARGETOS, ..., BUILDPLATFORM... as BuildKit defines them."""
    out: dict[str, str] = {}
    for prefix, p in (("TARGET", target), ("BUILD", build)):
        out[f"{prefix}PLATFORM"] = str(p)
        out[f"{prefix}OS"] = p.os
        out[f"{prefix}ARCH"] = p.architecture
        out[f"{prefix}VARIANT"] = p.variant or ""
    return out


PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


@dataclass
class StageRun:
    """A stage while (and after) it runs."""

    stage: Stage
    rootfs: Path
    image: ImageState
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs (None: no value)
    cmd_set: bool = False
    runner: Runner | None = None
    chain: str = ""  # the cache key chain: root key + every instruction so far (cachekey.py)
    materialized: bool = False  # rootfs holds image.layers (see Executor.materialize)

    @property
    def key(self) -> str:
        """Name for messages and the record."""
        return self.stage.name or str(self.stage.index)

    def expansion_env(self) -> dict[str, str]:
        """ARG values overridden by ENV (Docker's rule)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(self.image.env())
        return env

    def run_env(self) -> dict[str, str]:
        """Environment of a RUN step: ENV plus ARG values not shadowed by ENV."""
        return self.expansion_env()


class Executor:
    """Runs one parsed Dockerfile against one build context."""

    def __init__(self, options: BuildOptions, dockerfile: Dockerfile, context: BuildContext,
                 record: BuildRecord, *, work: Path, mode: str | None = None) -> None:
        self.options = options
        self.mode: ExecMode = _exec_mode(mode or options.mode)
        self.cfs: ContainerFS | None = None  # container mode: "/" as the stage's filesystem
        self.saved: dict[int, SavedStage] = {}  # container mode: stage index -> saved copy
        self.df = dockerfile
        self.ctx = context
        self.record = record
        self.work = work
        self.platform = options.target_platform()
        self.epoch = options.epoch()
        self.layer_store: LayerStore | None = None
        if options.cache_dir:
            self.layer_store = LayerStore(options.cache_dir, ttl=options.cache_ttl)
        self.bases = BaseImages(store_options=options.store_options, cache_dir=work / "blobs",
                                platform=self.platform, log=options.log,
                                layer_store=self.layer_store)
        self.layers = LayerSettings(directory=work / "layers", compression=options.compression,
                                    level=options.compression_level,
                                    docker_media_types=options.image_format == "docker",
                                    mtime=self.epoch)
        self.predefined = predefined_args(self.platform, Platform.host())
        self.global_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.runs: dict[int, StageRun] = {}
        self.externals: dict[str, ResolvedBase] = {}  # COPY --from reference -> pinned image
        # FROM image per stage index: the same reference may be pinned per platform
        # (FROM --platform=$BUILDPLATFORM base vs FROM base)
        self.stage_bases: dict[int, ResolvedBase] = {}
        self.copy_from_roots: dict[str, Path] = {}
        self._n_rootfs = 0
        self._uses: dict[int, list[tuple[int, str]]] = {}  # stage -> (user, "from"|"copy")
        self.ssh_agents = SshAgents(options.ssh, work)
        # stage filesystems as overlays of layers unpacked once in the layer store (chroot mode)
        self.overlays = OverlayRoots(work, self.layer_store if self.mode == "chroot" else None)
        if self.mode != "chroot":
            self.overlays.enabled = False
        self.cache: LayerCache | None = None
        self.hasher = SourceHasher(context)
        if options.cache:
            repo = cache_repo_for(options.cache_repo, options.destinations)
            self.cache = LayerCache.open(repo, options=options.store_options,
                                         layer_dir=work / "layers", platform=self.platform,
                                         output=options.output, layer_store=self.layer_store,
                                         ttl=options.cache_ttl)

    # ------------------------------------------------------------------ helpers for handlers
    def created(self) -> str:
        """Timestamp for history entries and the config."""
        return rfc3339(self.epoch if self.epoch is not None else time.time())

    @property
    def path(self) -> str:
        """The Dockerfile's name, for messages."""
        return self.df.path

    def error(self, cmd: Command, message: str) -> DockerfileError:
        """A DockerfileError naming ``Dockerfile:LINE INSTRUCTION``."""
        text = cmd.original if len(cmd.original) <= 80 else cmd.original[:77] + "..."
        return DockerfileError(message, path=self.df.path, line=cmd.line, instruction=text)

    def expander(self, st: StageRun) -> Expander:
        """The stage's ARG/ENV values (ENV wins), for ``commands.expand_command``."""
        return _StageExpander(self, st, {})

    def stage_arg_value(self, name: str, default: str | None) -> str | None:
        """A stage ARG's value: --build-arg, the (expanded) default, the global ARG's value,
        the predefined one (TARGETPLATFORM...), else None."""
        if name in self.options.build_args:
            self.used_args.add(name)
            return self.options.build_args[name]
        if default is not None:
            return default
        if self.global_args.get(name) is not None:
            return self.global_args[name]
        return self.predefined.get(name)

    def note_used(self, env: Mapping[str, str], text: str) -> None:
        """Remember the build args ``text`` refers to (for the unused-args warning)."""
        self.used_args.update(k for k in env if f"${k}" in text or "${" + k in text)

    def new_rootfs(self, label: str) -> Path:
        """An empty directory for a stage or an image's filesystem."""
        self._n_rootfs += 1
        path = self.work / fresh_name(f"rootfs-{self._n_rootfs:02d}-{label}")
        path.mkdir(parents=True)
        path.chmod(0o755)
        return path

    def cache_key(self, st: StageRun, cmd: str, spec: CacheKeySpec) -> str | None:
        """The key of a step with inputs ``spec`` (docs/cache.md), None without ``--cache``."""
        if self.cache is None:
            return None
        return step_key(st.chain, cmd, spec)

    def cache_enabled(self, cmd: str) -> bool:
        """Whether steps of kind ``cmd`` are looked up and stored (their keys chain anyway)."""
        if self.cache is None:
            return False
        if cmd == "RUN":
            return self.options.cache_run_layers
        if cmd in ("COPY", "ADD"):
            return self.options.cache_copy_layers
        return True

    def source_key(self, st: StageRun, ref: str) -> str:
        """What ``COPY --from=ref`` reads, for a key: the stage's chain or the image digest."""
        dep = self.earlier_stage(ref, st.stage.index)
        if dep is not None:
            return self.runs[dep.index].chain
        resolved = self.externals.get(ref)
        return str(resolved.digest) if resolved is not None else ref

    def _root_key(self, base: str, platform: Platform) -> str:
        opts = self.options
        return root_key(base=base, platform=platform, settings={
            "compression": opts.compression, "epoch": self.epoch,
            "ignore_paths": sorted(opts.ignore_paths), "mode": opts.mode,
            "security_profile": opts.security_profile,
            "seccomp": self.record.seccomp_profile_digest or opts.seccomp_profile or ""})

    def materialize(self, st: StageRun) -> None:
        """Extract the stage's layers into its rootfs (once; the base and any cached steps)."""
        if st.materialized:
            return
        if self._mount_layers(st.rootfs, st.image.layers, f"stage {st.key}"):
            st.materialized = True
            return
        if st.image.layers:
            print(f"stage {st.key}: extracting {len(st.image.layers)} layer(s)",
                  file=self.options.output)
        try:
            extract_image(st.image, st.rootfs)
        except DockerfileError:
            raise
        except TrustbuildError as exc:
            if st.stage.from_command is None:
                raise
            raise self.error(st.stage.from_command, str(exc)) from exc
        st.materialized = True

    def _mount_layers(self, rootfs: Path, layers: list[LayerRef], label: str) -> bool:
        """Mount ``layers`` (unpacked once in the layer store) as an overlay on the empty
        ``rootfs``; False when overlay cannot be used here (the caller extracts instead)."""
        if not layers or self.layer_store is None or not self.overlays.usable():
            return False
        before = self.overlays.unpacked_now
        try:
            lowers = [self.overlays.unpacked(layer) for layer in reversed(layers)]
            self.overlays.mount(rootfs, lowers)
        except (TrustbuildError, OSError) as exc:  # e.g. a layer that cannot stand alone
            print(f"[info] {label}: extracting instead of overlay lower dirs ({exc})",
                  file=self.options.output)
            return False
        print(f"{label}: mounting {len(layers)} layer(s) from the layer store "
              f"({self.overlays.unpacked_now - before} unpacked now)", file=self.options.output)
        return True

    def record_steps(self) -> list[StepRecord]:
        """The build record's steps so far (dispatch times the ones a command adds)."""
        return self.record.steps

    def step(self, st: StageRun, cmd: Command, text: str) -> StepRecord:
        """A step record appended to the build record (``text`` with secrets redacted)."""
        rec = StepRecord(stage=st.key, line=cmd.line, instruction=cmd.keyword,
                         text=redact_text(text, values=self.options.build_args),
                         started=time.time())
        self.record.steps.append(rec)
        return rec

    # ------------------------------------------------------------------ planning
    def _arg_value(self, name: str, default: str | None, env: dict[str, str]) -> str | None:
        if name in self.options.build_args:
            self.used_args.add(name)
            return self.options.build_args[name]
        if default is not None:
            return expand(default, env, escape=self.df.escape)
        return self.predefined.get(name)  # a bare ARG TARGETPLATFORM keeps the automatic value

    def _global_args(self) -> None:
        for ins in self.df.global_commands:
            for name, default in ins.pairs:
                env = self._from_env()
                try:
                    name = expand(name, env, escape=self.df.escape)  # ARG ${N}=v, as Docker
                    self.global_args[name] = self._arg_value(name, default, env)
                except TrustbuildError as exc:
                    raise self.error(ins, str(exc)) from None

    def _from_env(self) -> dict[str, str]:
        env = dict(self.predefined)
        env.update({k: v for k, v in self.global_args.items() if v is not None})
        return env

    def base_name(self, stage: Stage) -> str:
        """The FROM image text expanded with the global ARGs."""
        try:
            name = expand(stage.base, self._from_env(), escape=self.df.escape)
        except TrustbuildError as exc:
            raise self._from_error(stage, str(exc)) from None
        self.used_args.update(k for k in self.global_args if k in stage.base)
        if not name:
            raise self._from_error(stage, f"base name ({stage.base}) should not be blank")
        return name

    def _from_error(self, stage: Stage, msg: str) -> DockerfileError:
        if stage.from_command is not None:
            return self.error(stage.from_command, msg)
        return DockerfileError(msg, path=self.df.path, line=stage.line, instruction="FROM")

    def stage_platform(self, stage: Stage) -> Platform:
        """``FROM --platform=...`` expanded, else the target platform."""
        if not stage.platform:
            return self.platform
        text = expand(stage.platform, self._from_env(), escape=self.df.escape)
        try:
            return Platform.parse(text)
        except TrustbuildError as exc:
            raise self._from_error(stage, str(exc)) from None

    def earlier_stage(self, ref: str, before: int) -> Stage | None:
        """The stage ``ref`` names if it is earlier than stage index ``before``."""
        st = self.df.stage_by_name_or_index(ref)
        if st is not None and st.index < before:
            return st
        return None

    def target_stage(self) -> Stage:
        """The stage ``--target`` names (the last one by default)."""
        if not self.options.target:
            return self.df.stages[-1]
        st = self.df.stage_by_name_or_index(self.options.target)
        if st is None:
            names = ", ".join(s.name or str(s.index) for s in self.df.stages)
            raise DockerfileError(f"target stage {self.options.target!r} could not be found "
                                  f"(stages: {names})", path=self.df.path, instruction="--target")
        return st

    def _copy_from_refs(self, stage: Stage) -> list[tuple[Command, str]]:
        """(command, expanded --from value) of COPY --from and RUN --mount=...,from=."""
        return [(c, ref) for c, ref, _ in self._walk_stage(stage) if ref is not None]

    def _secret_mounts(self, stage: Stage) -> list[tuple[Command, MountSpec]]:
        """(command, parsed mount) of every RUN --mount=type=secret|ssh of the stage."""
        return [(c, m) for c, _, m in self._walk_stage(stage, secret_mounts=True)
                if m is not None]

    def _walk_stage(self, stage: Stage, *, secret_mounts: bool = False
                    ) -> list[tuple[Command, str | None, MountSpec | None]]:
        """ARG and ENV are followed through the stage (without running anything) so a
        ``--from`` or ``--mount`` that uses them expands as it will when the step runs."""
        env: dict[str, str] = {}
        out: list[tuple[Command, str | None, MountSpec | None]] = []
        ins: AnyCommand
        for ins in stage.commands:
            try:
                if isinstance(ins, ArgCmd):
                    for name, default in ins.pairs:
                        name = expand(name, env, escape=self.df.escape)
                        value = self.options.build_args.get(name)
                        if value is None and default is not None:
                            value = expand(default, env, escape=self.df.escape)
                        if value is None:
                            value = self.global_args.get(name) or self.predefined.get(name)
                        if value is not None:
                            env[name] = value
                elif isinstance(ins, EnvCmd):
                    before = dict(env)
                    for k, v in ins.pairs:
                        env[expand(k, before, escape=self.df.escape)] = expand(
                            v, before, escape=self.df.escape)
                elif secret_mounts:
                    if isinstance(ins, RunCmd) and ins.mount_values:
                        specs = number_ssh_targets([parse_mount_value(
                            expand(v, env, escape=self.df.escape)) for v in ins.mount_values])
                        out.extend((ins, None, m) for m in specs if m.type in SECRET_TYPES)
                elif isinstance(ins, CopyCmd) and ins.from_:
                    out.append((ins, expand(ins.from_, env, escape=self.df.escape), None))
                elif isinstance(ins, RunCmd) and ins.mount_values:
                    out.extend((ins, ref, None) for ref in mount_from_refs(
                        list(ins.mount_values), lambda w: expand(w, env, escape=self.df.escape)))
            except TrustbuildError as exc:
                raise self.error(ins, str(exc)) from None
        return out

    def plan(self) -> list[Stage]:
        """Stages the target needs, in order; resolves (but does not pull) external images."""
        self._global_args()
        target = self.target_stage()
        needed: set[int] = set()
        todo = [target]
        while todo:
            stage = todo.pop()
            if stage.index in needed:
                continue
            needed.add(stage.index)
            base = self.base_name(stage)
            dep = self.earlier_stage(base, stage.index)
            if dep is not None:
                todo.append(dep)
            for ins, ref in self._copy_from_refs(stage):
                dep = self.earlier_stage(ref, stage.index)
                if dep is not None:
                    todo.append(dep)
                elif ref.isdigit():
                    raise self.error(ins, f"invalid stage index {ref}: only earlier stages "
                                          "(0.." f"{stage.index - 1}) can be copied from")
                elif self.df.stage_by_name_or_index(ref) is not None:
                    raise self.error(ins, f"stage {ref!r} is not defined before this one")
        return [s for s in self.df.stages if s.index in needed]

    def check_secrets(self, stages: list[Stage]) -> None:
        """Before anything runs: every required secret / ssh agent a planned RUN mounts was
        given, and the mode can mount them; records the ids (never values) in the record."""
        for stage in stages:
            for ins, spec in self._secret_mounts(stage):
                if self.mode == "container":
                    raise self.error(ins, f"--mount type={spec.type} needs the RUN sandbox "
                                          "(--mode chroot): this build runs in container mode, "
                                          "which has no private mounts to keep it out of the "
                                          "layer")
                given = (self.options.secrets.keys() | self.options.secret_ids
                         if spec.type == "secret" else self.options.ssh.keys())
                if spec.required and spec.id not in given:
                    raise self.error(ins, missing_message(spec))
                if spec.type == "ssh" and not self.options.plan_only:
                    try:
                        self.ssh_agents.socket_for(spec.id)  # key files: start the agent now
                    except TrustbuildError as exc:
                        raise self.error(ins, str(exc)) from None
                seen = self.record.secrets if spec.type == "secret" else self.record.ssh
                entry = next((e for e in seen if e["id"] == spec.id), None)
                if entry is None:
                    seen.append({"id": spec.id, "optional": not spec.required})
                elif spec.required:
                    entry["optional"] = False

    def resolve_externals(self, stages: list[Stage]) -> None:
        """Resolve every FROM / COPY --from image to a digest and record it (no layers pulled)."""
        for stage in stages:
            base = self.base_name(stage)
            if base.lower() != "scratch" and self.earlier_stage(base, stage.index) is None:
                self._resolve(base, stage, "base", self.stage_platform(stage),
                              stage.from_command)
            for ins, ref in self._copy_from_refs(stage):
                if self.earlier_stage(ref, stage.index) is None:
                    self._resolve(ref, stage, "copy-from", self.platform, ins)
        for w in self.bases.warnings:
            print(f"[warning] {w}", file=self.options.output)

    def _resolve(self, ref: str, stage: Stage, role: str, plat: Platform,
                 ins: Command | None) -> None:
        try:
            resolved = self.bases.resolve(ref, platform=plat)
        except TrustbuildError as exc:
            if ins is None:
                raise
            msg = str(exc)
            if role == "copy-from":
                msg = f"--from={ref} names no earlier stage, and as an image: {msg}"
            raise self.error(ins, msg) from exc
        if role == "base":
            self.stage_bases[stage.index] = resolved
        else:
            self.externals[ref] = resolved
        if not any(i.digest == str(resolved.digest) and i.role == role and
                   i.stage == (stage.name or str(stage.index)) for i in self.record.images):
            self.record.images.append(ResolvedImage(
                reference=str(resolved.reference), digest=str(resolved.digest),
                index_digest=str(resolved.index_digest) if resolved.index_digest else None,
                role=role, stage=stage.name or str(stage.index)))

    # ------------------------------------------------------------------ running
    def run(self, stages: list[Stage]) -> StageRun:
        """Run the planned stages; returns the target's StageRun."""
        from trustbuild.builder.handlers import dispatch, run_onbuild_triggers

        self._uses = {s.index: [] for s in stages}
        for stage in stages:
            dep = self.earlier_stage(self.base_name(stage), stage.index)
            if dep is not None:
                self._uses[dep.index].append((stage.index, "from"))
            for _ins, ref in self._copy_from_refs(stage):
                dep = self.earlier_stage(ref, stage.index)
                if dep is not None:
                    self._uses[dep.index].append((stage.index, "copy"))
        if self.mode == "container":
            self._open_container_fs()
        last: StageRun | None = None
        total = sum(1 + len(s.commands) for s in stages)
        n = 0
        for stage in stages:
            n += 1
            base = self.base_name(stage)
            self._header(n, total, f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""),
                         stage)
            started = time.time()
            st = self._start_stage(stage)
            self.runs[stage.index] = st
            run_onbuild_triggers(self, st)
            self._footer(n, total, stage, started, len(self.record.steps))
            for cmd in stage.commands:
                n += 1
                self._header(n, total, cmd.original, stage)
                started, before = time.time(), len(self.record.steps)
                dispatch(self, st, cmd)
                self._footer(n, total, stage, started, before)
            if st.runner is not None:
                st.runner.close()
                st.runner = None
            if self.cfs is not None and self._uses.get(stage.index):
                # later stages start FROM it or COPY --from it: keep it before "/" is wiped
                saved = self.work / fresh_name(f"stage-{stage.index:02d}")
                self.saved[stage.index] = self.cfs.save(saved)
                st.rootfs = self.saved[stage.index].root
            last = st
        assert last is not None
        if self.cache is not None:
            self.cache.flush()  # the layers stored in the cache are there before the push
        self._warn_unused_args()
        return last

    def _header(self, n: int, total: int, text: str, stage: Stage) -> None:
        log = self.options.log
        if log is not None:
            text = " ".join(redact_text(text, values=self.options.build_args).split())
            log.step_start(n, total, text if len(text) <= 120 else text[:117] + "...",
                           stage=stage.name or str(stage.index))

    def _footer(self, n: int, total: int, stage: Stage, started: float, before: int) -> None:
        log = self.options.log
        if log is not None:
            cached = any(r.cached for r in self.record.steps[before:])
            log.step_end(n, total, seconds=time.time() - started, cached=cached,
                         stage=stage.name or str(stage.index))

    def _open_container_fs(self) -> None:
        from trustbuild.builder.container_fs import (
            ContainerFS,
            check_executor_protected,
            ignore_list_for,
        )

        ctx_dir = self.ctx.tempdir or self.ctx.root
        ignore = ignore_list_for(self.options, self.work, ctx_dir)
        check_executor_protected(ignore, force=self.options.force)
        self.cfs = ContainerFS(ignore, output=self.options.output)

    def _start_stage(self, stage: Stage) -> StageRun:
        if self.cfs is not None:
            return self._start_stage_in_root(stage)
        base = self.base_name(stage)
        label = stage.name or str(stage.index)
        rootfs = self.new_rootfs(label)
        ins = stage.from_command
        text = f"FROM {base}" + (f" AS {stage.name}" if stage.name else "")
        rec = StepRecord(stage=label, line=stage.line, instruction="FROM", text=text,
                         started=time.time())
        self.record.steps.append(rec)
        dep = self.earlier_stage(base, stage.index)
        materialized = False
        try:
            if base.lower() == "scratch":
                image = ImageState.scratch(self.stage_platform(stage))
                chain = self._root_key("scratch", self.stage_platform(stage))
                materialized = True
            elif dep is not None:
                prev = self.runs[dep.index]
                image = prev.image.clone()
                chain = prev.chain
                only_user = self._uses.get(dep.index) == [(stage.index, "from")]
                if only_user and prev.materialized and prev.rootfs not in self.overlays.mounts:
                    # nothing else needs the earlier stage's filesystem: take it over
                    rootfs.rmdir()
                    prev.rootfs.rename(rootfs)
                    prev.materialized = False
                    materialized = True
                elif prev.materialized and self.overlays.usable():
                    # it stays as it is (COPY --from reads it): an overlay on top of it, not
                    # a second extraction of every layer
                    try:
                        self.overlays.mount(rootfs, self.overlays.lowers_of(prev.rootfs))
                        materialized = True
                        print(f"stage {label}: on top of stage {prev.key} (overlay)",
                              file=self.options.output)
                    except OverlayUnavailable:
                        pass
            else:
                image = self.bases.image_state(self.stage_bases[stage.index])
                chain = self._root_key(str(self.stage_bases[stage.index].digest),
                                       self.stage_platform(stage))
        except DockerfileError:
            raise
        except TrustbuildError as exc:
            if ins is None:
                raise
            raise self.error(ins, str(exc)) from exc
        rec.finished = time.time()
        return StageRun(stage=stage, rootfs=rootfs, image=image, chain=chain,
                        materialized=materialized)

    def _start_stage_in_root(self, stage: Stage) -> StageRun:
        """Container mode: "/" is wiped and becomes the stage's base (Kaniko's way)."""
        from trustbuild.builder.container_fs import ROOT

        cfs = self.cfs
        assert cfs is not None
        base = self.base_name(stage)
        label = stage.name or str(stage.index)
        text = f"FROM {base}" + (f" AS {stage.name}" if stage.name else "")
        rec = StepRecord(stage=label, line=stage.line, instruction="FROM", text=text,
                         started=time.time())
        self.record.steps.append(rec)
        dep = self.earlier_stage(base, stage.index)
        try:
            if base.lower() == "scratch":
                image = ImageState.scratch(self.stage_platform(stage))
                chain = self._root_key("scratch", self.stage_platform(stage))
                cfs.start([])
            elif dep is not None:
                image = self.runs[dep.index].image.clone()
                chain = self.runs[dep.index].chain
                cfs.restore(self.saved[dep.index])
            else:
                image = self.bases.image_state(self.stage_bases[stage.index])
                chain = self._root_key(str(self.stage_bases[stage.index].digest),
                                       self.stage_platform(stage))
                cfs.start(image.layers)
        except DockerfileError:
            raise
        except TrustbuildError as exc:
            if stage.from_command is None:
                raise
            raise self.error(stage.from_command, str(exc)) from exc
        rec.finished = time.time()
        # "/" is the stage's filesystem from the start (no lazy extraction in container mode)
        return StageRun(stage=stage, rootfs=ROOT, image=image, chain=chain, materialized=True)

    def copy_from_ref(self, st: StageRun, cmd: Command) -> str | None:
        """The ``--from`` value of ``cmd`` as planned (so COPY uses what was resolved); None
        for an ONBUILD trigger (not planned)."""
        for planned, ref in self._copy_from_refs(st.stage):
            if planned.line == cmd.line and planned.original == cmd.original:
                return ref
        return None

    def source_root(self, st: StageRun, ins: Command, ref: str) -> Path:
        """The filesystem ``COPY --from=ref`` reads: an earlier stage's rootfs or an image's."""
        dep = self.earlier_stage(ref, st.stage.index)
        if dep is not None:
            self.materialize(self.runs[dep.index])
            return self.runs[dep.index].rootfs
        if ref not in self.copy_from_roots:
            resolved = self.externals.get(ref)
            if resolved is None:
                raise self.error(ins, f"--from={ref}: no such stage or image")
            root = self.new_rootfs("from")
            try:
                state = self.bases.image_state(resolved)
                if not self._mount_layers(root, state.layers, f"--from={ref}"):
                    extract_image(state, root)
            except TrustbuildError as exc:
                raise self.error(ins, str(exc)) from exc
            self.copy_from_roots[ref] = root
        return self.copy_from_roots[ref]

    def runner_for(self, st: StageRun) -> Runner:
        """The stage's RUN runner (created on first RUN)."""
        if st.runner is None:
            scratch = self.work / fresh_name(f"scratch-{st.key}")
            scratch.mkdir(exist_ok=True)
            from trustbuild.sandbox.runner import StepRunner  # loaded when a step runs

            factory: Callable[..., Runner] = self.options.runner_factory or StepRunner
            extra: dict[str, tuple[str, ...]] = {}
            if self.cfs is not None:
                extra["protect"] = tuple(sorted(self.cfs.ignore.paths))
            if self.options.runner_factory is None:  # a step overlay stacks the stage's layers
                layers = self.overlays.layers(st.rootfs)
                if layers is not None:
                    extra["layers"] = layers  # type: ignore[assignment]
            st.runner = factory(
                st.rootfs, scratch, snapshot_mode=self.options.snapshot_mode,
                mode=self.mode, **extra,
                ignore_paths=tuple(self.options.ignore_paths), compression=self.options.compression,
                level=self.options.compression_level, mtime=self.epoch,
                docker_media_types=self.options.image_format == "docker",
                output=self.options.output,
                force=self.options.force or self.cfs is not None)  # cfs: mode already checked
            if st.runner.snapshot_mode not in ("", "auto"):
                self.record.snapshot_mode = st.runner.snapshot_mode  # what ran, not "auto"
        return st.runner

    def _warn_unused_args(self) -> None:
        unused = sorted(k for k in self.options.build_args
                        if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            shown = ", ".join(unused)
            print(f"[warning] build args not consumed by the Dockerfile: {shown}",
                  file=self.options.output)

    def close(self) -> None:
        """Stop runners and release registry connections (the work dir is removed by the caller)."""
        for st in self.runs.values():
            if st.runner is not None:
                try:
                    st.runner.close()
                finally:
                    st.runner = None
        self.overlays.close()
        self.bases.close()
        if self.cache is not None:
            self.cache.close()
        self.ssh_agents.close()





def _exec_mode(mode: str) -> ExecMode:
    """``--mode`` after "auto" was resolved (``container_fs.resolve_mode``)."""
    if mode == "container":
        return "container"
    return "chroot"  # "chroot", and "auto" when nothing resolved it (unit tests)


class _StageExpander:
    """``commands.Expander`` over a stage: its ARG values overridden by its ENV (Docker's rule),
    plus ``pending`` ARGs declared earlier in the same ARG instruction."""

    def __init__(self, ex: Executor, st: StageRun, pending: Mapping[str, str | None]) -> None:
        self.ex, self.st, self.pending = ex, st, pending

    def _env(self) -> dict[str, str]:
        args = {**self.st.args, **self.pending}
        env = {k: v for k, v in args.items() if v is not None}
        env.update(self.st.image.env())
        return env

    def word(self, text: str) -> str:
        env = self._env()
        self.ex.note_used(env, text)
        return expand(text, env, escape=self.ex.df.escape)

    def words(self, text: str) -> list[str]:
        env = self._env()
        self.ex.note_used(env, text)
        return expand_words(text, env, escape=self.ex.df.escape)

    def heredoc(self, text: str) -> str:
        return expand_heredoc(text, self._env(), escape=self.ex.df.escape)

    def with_args(self, args: Mapping[str, str | None]) -> Expander:
        return _StageExpander(self.ex, self.st, {**self.pending, **args})

    def arg_value(self, name: str, default: str | None) -> str | None:
        return self.ex.stage_arg_value(name, default)
