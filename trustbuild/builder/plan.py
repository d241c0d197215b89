"""The build phases of one platform: :func:`prepare_platform` -> :class:`BuildPlan`;
:meth:`BuildPlan.run` -> :class:`BuiltImage`.

``prepare`` opens the context, parses the Dockerfile, plans the stages the target needs and
resolves every FROM / COPY --from image to a digest (``plan.record.images``); no layer is pulled,
extracted or run yet, so a policy gate can look at the plan and refuse it. ``run`` builds: the
image (layers, config, manifest) is ready, and nothing is pushed. Outputs and tags are the next
phases (builder.api: ``write_outputs``, ``put_tags``). Example::

    with prepare_platform(options) as plan:
        [i.digest for i in plan.record.images]   # what the build will use, by digest
        built = plan.run()                        # owns the work dir from here: close() it
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from trustbuild import __version__
from trustbuild._internal.topdir import mark_top_dir
from trustbuild._internal.workdir import make_work_dir, remove_work_dir
from trustbuild.builder.assemble import AssembledImage, assemble
from trustbuild.builder.config import rfc3339
from trustbuild.builder.context import BuildContext
from trustbuild.builder.dockerfile import Dockerfile, Stage, parse_dockerfile
from trustbuild.builder.emulation import check_foreign_runs
from trustbuild.builder.events import BuildLog
from trustbuild.builder.executor import Executor
from trustbuild.builder.options import BuildOptions, redact_build_args
from trustbuild.builder.outputs import WrittenOutput, validate_destinations
from trustbuild.builder.preflight import push_targets, start_push_check
from trustbuild.builder.record import BuildRecord, ResolvedImage
from trustbuild.errors import BuildError, SandboxError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.sandbox.profiles import resolve_profile

__all__ = ["BuildPlan", "BuiltImage", "prepare_platform", "setup_log", "preflight",
           "push_check_first"]


@dataclass
class BuiltImage:
    """A built image (or index): manifest, config and layers ready; ``close()`` removes the
    work dir (rootfs, layer blobs). ``outputs`` is filled by ``write_outputs``."""

    digest: str  # manifest digest (sha256:...)
    descriptor: Descriptor  # manifest descriptor (media type, digest, size)
    record: BuildRecord
    image: AssembledImage
    dockerfile: Dockerfile
    rootfs_dir: Path  # the target stage's filesystem (see ``rootfs``); container mode: "/"
    outputs: list[WrittenOutput] = field(default_factory=list)
    work_dir: Path | None = None
    children: list[BuiltImage] = field(default_factory=list)  # per platform, for an index
    materialize: Callable[[], None] | None = None  # fills rootfs_dir (a lazy target stage)
    release: Callable[[], None] | None = None  # closes the executor's stores and the context
    remove_later: bool = False  # close(): the work dir goes to a detached rm (_internal.removal)

    @property
    def rootfs(self) -> Path:
        """The target stage's filesystem (for SBOM generation), extracted on first use when
        every step came from the cache."""
        if self.materialize is not None:
            self.materialize()
            self.materialize = None
        return self.rootfs_dir

    @property
    def manifest_raw(self) -> bytes:
        """The manifest bytes."""
        return self.image.manifest_raw

    @property
    def config_raw(self) -> bytes:
        """The config bytes."""
        return self.image.config_raw

    def close(self) -> None:
        """Release stores and delete the work directory (each platform's too)."""
        for child in self.children:
            child.close()
        if self.release is not None:
            self.release()
            self.release = None
        for out in self.outputs:
            try:
                out.store.close()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
        if self.work_dir is not None:
            remove_work_dir(self.work_dir, later=self.remove_later)
            self.work_dir = None

    def __enter__(self) -> BuiltImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_context_digest(ctx: BuildContext) -> Future[str]:
    """``ctx.digest()`` on a thread of its own."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="context-digest")
    try:
        return pool.submit(lambda: str(ctx.digest()))
    finally:
        pool.shutdown(wait=False)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def setup_log(options: BuildOptions) -> None:
    """The build's log (from ``log_format`` unless the caller gave one); RUN output and warnings
    go to its stream (json events in json mode)."""
    if options.log is None:
        options.log = BuildLog(options.output, fmt=options.log_format,
                               timestamps=options.log_timestamp)
    options.output = options.log.stream


def preflight(options: BuildOptions) -> Callable[[], None]:
    """Kaniko's push permission check: every repository the build will push to accepts an
    upload (skipped by --skip-push-permission-check). It runs on a thread while the context
    is opened and the base images resolved; the returned function waits for it and raises its
    error. Call it before anything is pulled, run or pushed (``prepare_*`` do)."""
    if options.skip_push_permission_check:
        return _no_check
    targets = push_targets(options.destinations, no_push=options.no_push, cache=options.cache,
                           cache_repo=options.cache_repo, no_push_cache=options.no_push_cache)
    if not targets:
        return _no_check
    wait = start_push_check(targets, options.store_options)
    logged = False

    def done() -> None:
        nonlocal logged
        wait()
        if options.log is not None and not logged:
            logged = True
            options.log.event("push_check", repositories=targets, ok=True)

    return done


def _no_check() -> None:
    return None


def push_check_first(done: Callable[[], None], exc: BaseException) -> None:
    """On a failed prepare: a refused push is the error to report (Kaniko checks it before
    anything else), so wait for the check and raise its error; return if it passed."""
    if isinstance(exc, Exception):
        done()


def _random_uuid() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` gives it. Not from ``uuid``: that
    module imports ``platform``, ~3 ms of every build for one identifier."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _new_record(options: BuildOptions) -> BuildRecord:
    return BuildRecord(
        invocation_id=_random_uuid(), started_on=_now(), trustbuild_version=__version__,
        build_args=redact_build_args(options.build_args), target=options.target,
        platform=str(options.target_platform()), destinations=list(options.destinations),
        labels=dict(options.labels), security_profile=options.security_profile,
        seccomp_profile=options.seccomp_profile or "", snapshot_mode=options.snapshot_mode,
        mode=options.mode,
        reproducible=options.reproducible or options.source_date_epoch is not None)


def _seccomp_digest(options: BuildOptions, record: BuildRecord) -> None:
    """Check the security profile before anything runs and record its seccomp digest.

    A seccomp profile in force always has a digest (the provenance names it): one that
    cannot be read, parsed or digested fails the build here. Compiling it with libseccomp waits
    for the first RUN step (the runner does it before the step starts), so a build whose steps
    all come from the cache does not pay for it.
    """
    prof = resolve_profile(options.security_profile, seccomp=options.seccomp_profile,
                           compile_check=False)
    path = prof.seccomp_path
    asked = options.seccomp_profile
    if not path:
        record.seccomp_profile = "unconfined"
        record.seccomp_profile_digest = ""
        return
    if not prof.seccomp_digest.startswith("sha256:"):
        raise SandboxError(f"seccomp profile {path}: no digest to record in the provenance")
    if asked and ("/" in asked or asked.endswith(".json")):
        record.seccomp_profile = asked  # a user's file: as given
    else:
        record.seccomp_profile = Path(path).stem  # a shipped profile: its name, no host path
    record.seccomp_profile_digest = prof.seccomp_digest


def _resolve_mode(options: BuildOptions) -> str:
    """``chroot`` or ``container`` (``auto`` probes the RUN sandbox in a temp dir)."""
    if options.mode == "chroot" or (options.mode == "auto" and options.runner_factory):
        return "chroot"
    from trustbuild.builder.container_fs import resolve_mode

    probe = Path(tempfile.mkdtemp(prefix="trustbuild-probe-", dir=options.work_dir))
    try:
        return resolve_mode(options, probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _work_dir(options: BuildOptions, mode: str) -> Path:
    parent: str | Path | None = options.work_dir
    if parent is None and mode == "container":
        parent = options.kaniko_dir  # like Kaniko: everything under /kaniko, never wiped
        try:
            Path(parent).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxError(f"cannot create the kaniko dir {parent}: {exc.strerror}; "
                               "give a writable one with --kaniko-dir") from None
    try:
        work = make_work_dir(parent)  # and a killed build's left-overs go (_internal.workdir)
    except OSError as exc:
        hint = "--kaniko-dir" if mode == "container" and options.work_dir is None else "TMPDIR"
        raise BuildError(f"cannot create a work dir in {parent or tempfile.gettempdir()}: "
                         f"{exc.strerror or exc}; give a writable one with {hint}") from None
    mark_top_dir(work)  # its trees away from the last build's, just removed (_internal.topdir)
    return work


class BuildPlan:
    """One platform's build, ready to run: the parsed Dockerfile, the target stage and the
    stages it needs, every external image pinned by digest (``record.images``), the context
    open. ``close()`` (or leaving ``with``) releases it when it is not run."""

    def __init__(self, options: BuildOptions, dockerfile: Dockerfile, stages: list[Stage],
                 record: BuildRecord, *, context: BuildContext, executor: Executor,
                 work: Path, context_digest: Future[str] | None = None) -> None:
        self._context_digest = context_digest
        self.options = options
        self.dockerfile = dockerfile
        self.stages = stages
        self.target: Stage = stages[-1]  # the target is planned last
        self.record = record
        self.context: BuildContext | None = context
        self.work = work
        self._executor: Executor | None = executor

    @property
    def plans(self) -> list[BuildPlan]:
        """The single-platform plans (this one; an index plan has one per platform)."""
        return [self]

    @property
    def images(self) -> list[ResolvedImage]:
        """Every FROM / COPY --from image, pinned by digest (what the build will use)."""
        return self.record.images

    @property
    def mode(self) -> str:
        """``chroot`` or ``container``."""
        return self.record.mode

    def run(self) -> BuiltImage:
        """Build every planned stage and assemble the image; nothing is pushed or tagged.

        The returned image owns the work dir, the context and the executor's stores."""
        ex = self._executor
        if ex is None:
            raise RuntimeError("BuildPlan.run: this plan was already run or closed")
        self._executor = None
        try:
            if self.mode == "chroot" and self.options.runner_factory is None:
                check_foreign_runs(ex, self.stages)  # qemu-user for a foreign RUN, before any
            target = ex.run(self.stages)
            self._finish_context_digest()
            created = rfc3339(ex.epoch if ex.epoch is not None else time.time())
            image = assemble(target.image, created=created, platform=ex.platform,
                             image_format=self.options.image_format, labels=self.options.labels)
        except BaseException:
            self._executor = ex
            self.close()
            raise
        record = self.record
        record.result_digest = str(image.descriptor.digest)
        record.result_media_type = image.media_type
        record.config_digest = str(image.config.digest)
        record.finished_on = _now()
        context, self.context = self.context, None
        work = self.work

        def release() -> None:
            try:
                ex.close()
            finally:
                if context is not None:
                    context.close()

        return BuiltImage(str(image.descriptor.digest), image.descriptor, record, image,
                          self.dockerfile, target.rootfs, work_dir=work,
                          materialize=lambda: ex.materialize(target), release=release,
                          remove_later=self.options.remove_work_dir_later)

    def _finish_context_digest(self) -> None:
        """Wait for the context digest (into the record); its error, if it failed."""
        future, self._context_digest = self._context_digest, None
        if future is not None:
            self.record.context_digest = future.result()

    def close(self) -> None:
        """Release a plan that was not run: executor, context, work dir."""
        ex, self._executor = self._executor, None
        with contextlib.suppress(Exception):
            self._finish_context_digest()  # the thread reads the context: before it goes
        try:
            if ex is not None:
                ex.close()
        finally:
            if self.context is not None:
                self.context.close()
                self.context = None
            if ex is not None:
                remove_work_dir(self.work)

    def __enter__(self) -> BuildPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_platform(options: BuildOptions) -> BuildPlan:
    """Everything before the first layer is pulled: the push permission check, the context,
    the Dockerfile, the stages the target needs, the required secrets, and every FROM /
    COPY --from image resolved to a digest. Raises a TrustbuildError; leaves nothing behind."""
    from trustbuild.builder.context import open_context, read_dockerfile

    validate_destinations(options.destinations)
    setup_log(options)
    record = _new_record(options)
    checked = preflight(options)  # on its thread while the seccomp profile is compiled
    _seccomp_digest(options, record)  # a bad profile is the error, whatever the check says
    ctx: BuildContext | None = None
    ex: Executor | None = None
    work: Path | None = None
    try:
        mode = record.mode = _resolve_mode(options)
        work = _work_dir(options, mode)
        ctx = open_context(options.context, sub_path=options.context_sub_path, stdin=options.stdin,
                           tmp_dir=work if mode == "container" else None)  # never wiped
        df_path, text = read_dockerfile(options.dockerfile, ctx, stdin=options.stdin)
        name = Path(str(df_path)).name if options.dockerfile != "-" else "Dockerfile"
        record.dockerfile_path = str(df_path)
        record.dockerfile_digest = str(Digest.of(text.encode()))
        record.context_source = ctx.source
        # hashed on a thread while the build starts (the base pull and unpack come first);
        # needed by the provenance, after run(); COPY shares its per-file digests
        context_digest = _start_context_digest(ctx)
        record.git_commit = ctx.git_commit
        df = parse_dockerfile(text, path=name)
        ex = Executor(options, df, ctx, record, work=work, mode=mode)
        stages = ex.plan()
        ex.check_secrets(stages)
        ex.resolve_externals(stages)
        checked()
        return BuildPlan(options, df, stages, record, context=ctx, executor=ex, work=work,
                         context_digest=context_digest)
    except BaseException as exc:
        try:
            if ex is not None:
                ex.close()
        finally:
            if ctx is not None:
                ctx.close()
            if work is not None:
                remove_work_dir(work)
            push_check_first(checked, exc)
        raise
