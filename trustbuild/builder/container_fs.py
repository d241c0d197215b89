"""Container mode (Kaniko's way): build in "/" of the container the executor runs in.

``resolve_mode`` picks the mode of a build (``auto`` tries the RUN sandbox and falls back to
``container`` inside a container); ``ContainerFS`` does what Kaniko's ``pkg/util/fs_util.go``
does for a stage: wipe "/" except the ignore list, extract the base image into "/", and save a
finished stage's filesystem under the work dir for later ``FROM stage`` / ``COPY --from=stage``.

Example::

    mode = resolve_mode(options, scratch)            # "chroot" or "container"
    fs = ContainerFS(ignore_list_for(options, work, context_root), output=sys.stderr)
    fs.start(layers)                                  # wipe "/", extract the base layers
    ...                                               # COPY/RUN write into "/"
    saved = fs.save(work / "stage-0")                 # dir for COPY --from, tar for FROM
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trustbuild.builder.config import LayerRef, ensure_local
from trustbuild.errors import SandboxError
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer
from trustbuild.oci.layer import LayerWriter
from trustbuild.sandbox import snapshot, userns
from trustbuild.sandbox.container import (
    IgnoreList,
    container_hints,
    kaniko_ignore_list,
    unprotected_executor_files,
)

if TYPE_CHECKING:
    from trustbuild.builder.options import BuildOptions

__all__ = ["ContainerFS", "SavedStage", "resolve_mode", "sandbox_works", "ignore_list_for",
           "MODES", "ROOT"]

MODES = ("auto", "chroot", "container")
ROOT = Path("/")
_PROBE_MAGIC = b"not an executable\n"
_PROBES: dict[tuple[str, str | None], tuple[bool, str]] = {}  # (profile, seccomp) -> result


def sandbox_works(options: BuildOptions, scratch: Path) -> tuple[bool, str]:
    """Run a probe step through the real RUN sandbox (namespaces, pivot_root, seccomp of the
    build's profile): (True, "") when it gets as far as ``execve``, else (False, why)."""
    from trustbuild.sandbox import RunSpec, StepRunner

    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sandbox-probe-", dir=scratch))
    try:
        root = work / "rootfs"
        root.mkdir()
        for d in ("etc", "proc", "dev", "sys"):
            (root / d).mkdir()
        probe = root / "probe"
        probe.write_bytes(_PROBE_MAGIC)  # executable bit, no valid format: execve says ENOEXEC
        probe.chmod(0o755)
        with StepRunner(root, work / "scratch", snapshot_mode="walk", mode="chroot",
                        output=open(os.devnull, "w")) as runner:  # noqa: SIM115
            try:
                runner.run(RunSpec(["/probe"], env={}, label="probe",
                                   security_profile=options.security_profile,
                                   seccomp_profile=options.seccomp_profile),
                           work / "layer.tar")
            except SandboxError as exc:
                msg = str(exc)
                if "cannot run '/probe'" in msg:
                    return True, ""
                msg = msg.removeprefix("probe: sandbox set-up failed: ")
                return False, msg.split(" (run as root")[0]
        return True, ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _probe(options: BuildOptions, scratch: Path) -> tuple[bool, str]:
    """sandbox_works, remembered in the layer store when the build has one."""
    store = options.cache_dir
    if not store:
        return sandbox_works(options, scratch)
    from trustbuild.builder import sandboxprobe

    answer = sandboxprobe.remembered(store, options)
    if answer is None:
        answer = sandbox_works(options, scratch)
        sandboxprobe.remember(store, options, answer)
    return answer


def resolve_mode(options: BuildOptions, scratch: Path) -> str:
    """``chroot`` or ``container`` for ``options.mode`` (auto|chroot|container).

    ``container`` refuses to run outside a container unless ``options.force``; ``auto`` prefers
    the sandbox and uses ``container`` only when the sandbox cannot start and this is a
    container (elsewhere it stays ``chroot``, where a RUN then fails with the sandbox's error).
    """
    mode = options.mode
    if mode not in MODES:
        raise SandboxError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "chroot" or (mode == "auto" and options.runner_factory is not None):
        return "chroot"
    if mode == "auto":
        key = (options.security_profile, options.seccomp_profile)
        if key not in _PROBES:
            _PROBES[key] = _probe(options, scratch)
        ok, why = _PROBES[key]
        if ok:
            return "chroot"
        if userns.inside() and not options.force:
            # a rootless build: / is the machine's, never Kaniko's way here
            hint = ("; in a container /proc must not be masked: Kubernetes procMount: "
                    "Unmasked, docker/podman --security-opt systempaths=unconfined"
                    if "mount /proc" in why else "")
            print(f"[warning] the RUN sandbox cannot start in this user namespace ({why}): "
                  f"RUN steps will fail{hint} (see docs/rootless.md)", file=options.output)
            return "chroot"
        if not container_hints() and not options.force:
            # never Kaniko's way outside a container: builds without RUN still work, and the
            # first RUN fails with the sandbox's own error
            print(f"[warning] the RUN sandbox cannot start here ({why}) and this does not look "
                  "like a container, so / is left alone: RUN steps will fail (run as root or "
                  "with CAP_SYS_ADMIN)", file=options.output)
            return "chroot"
        if options.snapshot_mode == "overlay":
            raise SandboxError(f"the RUN sandbox cannot start here ({why}), and "
                               "--snapshot-mode overlay needs it; use walk or full")
        print(f"[info] the RUN sandbox cannot start here ({why}); building in / of this "
              "container as Kaniko does (--mode container)", file=options.output)
        return "container"
    if userns.inside():
        raise SandboxError("--mode container rewrites / as root and a rootless build is not "
                           "root of the machine: use --mode chroot (docs/rootless.md)")
    if options.snapshot_mode == "overlay":
        raise SandboxError("--snapshot-mode overlay needs the RUN sandbox; use walk or full "
                           "with --mode container")
    if not container_hints() and not options.force:
        raise SandboxError("--mode container deletes and rewrites / of the machine it runs on "
                           "and this does not look like a container (no /.dockerenv, "
                           "/run/.containerenv, $container, $KUBERNETES_SERVICE_HOST or "
                           "container cgroup); use --mode chroot, or --force if you mean it")
    return "container"


def _option_paths(options: BuildOptions, context_root: Path | None) -> Iterable[str]:
    """Files the executor itself reads or writes during the build: never wiped or captured."""
    yield from (str(p) for p in (context_root,) if p is not None)
    for name in ("tar_path", "oci_layout_path", "digest_file", "image_name_with_digest_file",
                 "sign_key", "policy", "cache_dir"):
        value = getattr(options, name, None)
        if value:
            yield str(value)
    if options.dockerfile and options.dockerfile != "-" and os.path.isabs(options.dockerfile):
        yield options.dockerfile
    if options.seccomp_profile and "/" in options.seccomp_profile:
        yield options.seccomp_profile
    if options.cache_repo and options.cache_repo.startswith("oci:"):
        yield options.cache_repo[4:]
    yield from options.store_options.registry_certificates.values()
    for env in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR",
                "TRUSTBUILD_SECCOMP_DIR"):
        if os.environ.get(env):
            yield os.environ[env]
    if not os.environ.get("DOCKER_CONFIG"):
        yield os.path.join(os.path.expanduser("~"), ".docker")


def ignore_list_for(options: BuildOptions, work: Path, context_root: Path | None) -> IgnoreList:
    """The build's ignore list: Kaniko's (mount points, /proc, /sys, /dev, /etc/mtab, /var/run,
    the kaniko dir, the executor's own files), the work dir, the build's inputs and outputs,
    and ``--ignore-path``."""
    extra = [os.path.realpath(os.path.abspath(p)) for p in _option_paths(options, context_root)]
    extra += list(options.ignore_paths)
    return IgnoreList(kaniko_ignore_list(
        extra=extra, scratch=work, kaniko_dir=str(options.kaniko_dir),
        ignore_var_run=options.ignore_var_run))


def check_executor_protected(ignore: IgnoreList, *, force: bool) -> None:
    """Refuse when the running executor's own binaries lie outside the ignore list."""
    loose = unprotected_executor_files(ignore)
    if loose and not force:
        raise SandboxError(
            f"--mode container would delete the executor's own files ({loose[0]} and "
            f"{len(loose) - 1} more) when it replaces / with the base image: install trustbuild "
            "self-contained under one directory on the ignore list (like /kaniko, see "
            "docs/build.md), pass --ignore-path for it, or use --mode chroot")


class SavedStage:
    """A finished stage's filesystem: a tar (to restore into "/") and a directory (to read)."""

    def __init__(self, tar: Path, root: Path) -> None:
        self.tar = tar
        self.root = root


class ContainerFS:
    """Kaniko's filesystem handling of "/" (``root`` is "/" except in unit tests)."""

    def __init__(self, ignore: IgnoreList, *, root: Path = ROOT,
                 output: TextIO | None = None) -> None:
        self.ignore = ignore
        self.root = Path(root)
        self.output = output if output is not None else sys.stderr

    def _abs(self, host: str) -> str:
        """The container path of host path ``host`` below root."""
        rel = os.path.relpath(host, self.root)
        return "/" + ("" if rel == "." else rel)

    def excluded(self, host_path: str) -> bool:
        """Whether ``host_path`` (a host path below root) is on the ignore list."""
        return self.ignore(self._abs(host_path))

    def wipe(self) -> None:
        """Delete everything below root except the ignore list (and directories holding an
        entry of it), as Kaniko does before it extracts a stage's base image."""
        try:
            self._wipe_dir(str(self.root))
        except OSError as exc:
            raise SandboxError(f"container mode cannot clear {exc.filename or self.root}: "
                               f"{exc.strerror} (building in / needs a writable root "
                               "filesystem; use --mode chroot otherwise)") from None

    def _wipe_dir(self, directory: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            cpath = self._abs(e.path)
            if self.ignore(cpath):
                continue
            is_dir = e.is_dir(follow_symlinks=False)
            if self.ignore.holds_ignored(cpath):
                if is_dir:
                    self._wipe_dir(e.path)
                    self._reset_dir(e.path)
                continue  # a symlink or file on the way to an ignored path stays
            if is_dir:
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)

    @staticmethod
    def _reset_dir(path: str) -> None:
        """A directory kept only because it leads to an ignored path looks like one ``mkdir -p``
        would make (root 0755) until the base image says otherwise."""
        try:
            os.chown(path, 0, 0, follow_symlinks=False)
            os.chmod(path, 0o755)
        except OSError:
            pass  # a read-only parent: it stays as the container has it

    def extract(self, layers: Iterable[LayerRef]) -> None:
        """Apply image layers to root, leaving the ignore list alone."""
        for layer in layers:
            expected = Digest.parse(layer.diff_id) if layer.diff_id else None
            extract_layer(ensure_local(layer), self.root, media_type=layer.descriptor.media_type,
                          diff_id=expected, what=f"layer {layer.descriptor.digest}",
                          exclude=self.excluded)

    def start(self, layers: Iterable[LayerRef]) -> None:
        """A new stage FROM an image (or scratch): wipe, then extract its layers."""
        self.wipe()
        self.extract(layers)

    def restore(self, saved: SavedStage) -> None:
        """A new stage FROM an earlier stage: wipe, then bring back its saved filesystem."""
        self.wipe()
        extract_layer(saved.tar, self.root, what=f"saved stage {saved.tar.name}",
                      exclude=self.excluded)

    def save(self, dest: Path) -> SavedStage:
        """Save root minus the ignore list to ``dest``.tar and ``dest``/ (for COPY --from)."""
        def exclude(rel: str) -> bool:
            return self.ignore(self._abs(os.path.join(self.root, rel)))

        snap = snapshot.take_snapshot(self.root, exclude=exclude)
        changes = snapshot.Changes(added=set(snap))
        tar = dest.with_name(dest.name + ".tar")
        with LayerWriter(tar, compression="none") as writer:
            snapshot.write_changes(self.root, changes, writer)
            writer.finish()
        dest.mkdir(parents=True)
        st = os.lstat(self.root)
        os.chmod(dest, stat.S_IMODE(st.st_mode))
        extract_layer(tar, dest, what=f"saved stage {dest.name}")
        return SavedStage(tar, dest)
