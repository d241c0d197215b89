"""The build API: ``build(options) -> BuildResult``.

Example::

    from trustbuild.builder.api import build
    from trustbuild.builder.options import BuildOptions

    with build(BuildOptions(context="app", destinations=["127.0.0.1:5000/app:1"])) as result:
        print(result.digest)            # sha256:... of the pushed manifest
        result.record.to_json()         # inputs by digest, steps and timings
        result.rootfs                   # the target stage's filesystem (until close();
                                        # extracted on first access after a full cache hit)

Hooks: ``options.gate(dockerfile, record)`` runs once every FROM / COPY --from image is resolved
to a digest and before anything is extracted or run (raise PolicyViolation to deny);
``options.post_push_hooks`` get the BuildResult after every registry/layout output was written
by digest, and before any tag is set (so a failing hook, e.g. signing, leaves no tag), the
docker-archive tarball and the digest files are written.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustbuild import __version__
from trustbuild.builder.assemble import AssembledImage, assemble
from trustbuild.builder.config import rfc3339
from trustbuild.builder.dockerfile import Dockerfile, parse_dockerfile
from trustbuild.builder.emulation import check_foreign_runs
from trustbuild.builder.events import BuildLog
from trustbuild.builder.executor import Executor
from trustbuild.builder.options import BuildOptions, redact_build_args
from trustbuild.builder.outputs import (
    WrittenOutput,
    apply_tags,
    push_destinations,
    validate_destinations,
    write_digest_files,
    write_docker_archive,
    write_oci_layout,
)
from trustbuild.builder.preflight import check_push_permissions, push_targets
from trustbuild.builder.record import BuildRecord
from trustbuild.errors import SandboxError, TrustbuildError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest

__all__ = ["build", "BuildResult"]


@dataclass
class BuildResult:
    """What a build produced; ``close()`` removes the work dir (rootfs, layer blobs)."""

    digest: str  # manifest digest (sha256:...)
    descriptor: Descriptor  # manifest descriptor (media type, digest, size)
    record: BuildRecord
    image: AssembledImage
    dockerfile: Dockerfile
    rootfs_dir: Path  # the target stage's filesystem (see ``rootfs``); container mode: "/"
    outputs: list[WrittenOutput] = field(default_factory=list)
    work_dir: Path | None = None
    children: list[BuildResult] = field(default_factory=list)  # per platform, for an index
    materialize: Callable[[], None] | None = None  # fills rootfs_dir (a lazy target stage)
    release: Callable[[], None] | None = None  # closes the executor's stores

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
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def __enter__(self) -> BuildResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_record(options: BuildOptions) -> BuildRecord:
    return BuildRecord(
        invocation_id=str(uuid.uuid4()), started_on=_now(), trustbuild_version=__version__,
        build_args=redact_build_args(options.build_args), target=options.target,
        platform=str(options.target_platform()), destinations=list(options.destinations),
        labels=dict(options.labels), security_profile=options.security_profile,
        seccomp_profile=options.seccomp_profile or "", snapshot_mode=options.snapshot_mode,
        mode=options.mode,
        reproducible=options.reproducible or options.source_date_epoch is not None,
        executor_image=options.executor_image)


def _seccomp_digest(options: BuildOptions, record: BuildRecord) -> None:
    """Check the security profile before anything runs and record its seccomp digest."""
    try:
        from trustbuild.sandbox import resolve_profile
    except ImportError:
        return
    prof = resolve_profile(options.security_profile, seccomp=options.seccomp_profile)
    path = getattr(prof, "seccomp_path", None)
    asked = options.seccomp_profile
    if not path:
        record.seccomp_profile = "unconfined"
    elif asked and ("/" in asked or asked.endswith(".json")):
        record.seccomp_profile = asked  # a user's file: as given
    else:
        record.seccomp_profile = Path(str(path)).stem  # a shipped profile: its name, no host path
    record.seccomp_profile_digest = str(getattr(prof, "seccomp_digest", "") or "")


def _preflight(options: BuildOptions) -> None:
    """Kaniko's push permission check: every repository the build will push to accepts an
    upload, before any context is read or image pulled (skipped by --skip-push-permission-check)."""
    if options.skip_push_permission_check:
        return
    targets = push_targets(options.destinations, no_push=options.no_push, cache=options.cache,
                           cache_repo=options.cache_repo, no_push_cache=options.no_push_cache)
    if targets:
        check_push_permissions(targets, options.store_options)
        options.log.event("push_check", repositories=targets, ok=True)


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


def build(options: BuildOptions) -> BuildResult:
    """Run one build and write every requested output; raise a TrustbuildError on failure.

    With several ``options.platforms`` the result is one image index (see builder.multiplatform).
    """
    from trustbuild.builder.context import open_context, read_dockerfile


    refs = validate_destinations(options.destinations)
    if options.log is None:
        options.log = BuildLog(options.output, fmt=options.log_format,
                               timestamps=options.log_timestamp)
    options.output = options.log.stream  # RUN output and warnings: json events in json mode
    if len(options.platforms) > 1:
        from trustbuild.builder.multiplatform import build_multiplatform

        index: BuildResult = build_multiplatform(options, build, _preflight)  # one index
        return index
    record = _new_record(options)
    _seccomp_digest(options, record)
    _preflight(options)
    mode = record.mode = _resolve_mode(options)
    work_parent: str | Path | None = options.work_dir
    if work_parent is None and mode == "container":
        work_parent = options.kaniko_dir  # like Kaniko: everything under /kaniko, never wiped
        try:
            Path(work_parent).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxError(f"cannot create the kaniko dir {work_parent}: {exc.strerror}; "
                               "give a writable one with --kaniko-dir") from None
    work = Path(tempfile.mkdtemp(prefix="trustbuild-build-", dir=work_parent))
    ctx: Any = None
    ex: Executor | None = None
    ok = False
    try:
        ctx = open_context(options.context, sub_path=options.context_sub_path, stdin=options.stdin,
                           tmp_dir=work if mode == "container" else None)  # never wiped
        df_path, text = read_dockerfile(options.dockerfile, ctx, stdin=options.stdin)
        name = Path(str(df_path)).name if options.dockerfile != "-" else "Dockerfile"
        record.dockerfile_path = str(df_path)
        record.dockerfile_digest = str(Digest.of(text.encode()))
        record.context_source = str(getattr(ctx, "source", options.context))
        record.context_digest = str(ctx.digest())
        record.git_commit = getattr(ctx, "git_commit", None)
        df = parse_dockerfile(text, path=name)
        ex = Executor(options, df, ctx, record, work=work, mode=mode)
        stages = ex.plan()
        ex.check_secrets(stages)
        ex.resolve_externals(stages)
        if options.gate is not None:
            try:
                options.gate(df, record)
            except TrustbuildError as exc:
                options.log.event("gate", verdict="deny", reason=str(exc))
                raise
            options.log.event("gate", verdict="allow",
                              images=[f"{i.reference}@{i.digest}" for i in record.images])
        if mode == "chroot" and options.runner_factory is None:
            check_foreign_runs(ex, stages)  # qemu-user for a foreign RUN, before anything runs
        target = ex.run(stages)
        created = rfc3339(ex.epoch if ex.epoch is not None else time.time())
        image = assemble(target.image, created=created, platform=ex.platform,
                         image_format=options.image_format, labels=options.labels)
        digest = str(image.descriptor.digest)
        record.result_digest = digest
        record.result_media_type = image.media_type
        record.config_digest = str(image.config.digest)
        # by digest first; tags, the tarball and digest files only once the hooks (signing,
        # attestations) succeeded: nothing unsigned is ever tagged
        outputs = _write_outputs(options, image, refs)
        record.finished_on = _now()
        executor = ex
        result = BuildResult(digest, image.descriptor, record, image, df, target.rootfs,
                             outputs, work, materialize=lambda: executor.materialize(target),
                             release=executor.close)
        ex = None  # closed by result.close(): result.rootfs may still pull layers
        try:
            for hook in options.post_push_hooks:
                hook(result)
            apply_tags(outputs, output=options.output)
            if options.tar_path:
                tags = [str(r) for r in refs if r.tag]
                outputs.append(write_docker_archive(image, options.tar_path, tags=tags))
            write_digest_files(digest, refs, digest_file=options.digest_file,
                               name_file=options.image_name_with_digest_file,
                               name_tag_file=options.image_name_tag_with_digest_file)
        except BaseException:
            result.close()
            raise
        ok = True
        return result
    finally:
        if ex is not None:
            ex.close()
        if ctx is not None:
            ctx.close()
        options.log.close()
        if not ok:
            shutil.rmtree(work, ignore_errors=True)


def _write_outputs(options: BuildOptions, image: AssembledImage, refs: list[Any]
                   ) -> list[WrittenOutput]:
    """Registry destinations and the OCI layout, by digest (tags come after the hooks)."""
    outputs: list[WrittenOutput] = []
    if refs and not options.no_push:
        outputs += push_destinations(image, refs, options.store_options, output=options.output,
                                     log=options.log, tag=False)
    tag = next((r.tag for r in refs if r.tag), None) or "latest"
    if options.oci_layout_path:
        outputs.append(write_oci_layout(image, options.oci_layout_path, tag=tag, tag_now=False))
    return outputs
