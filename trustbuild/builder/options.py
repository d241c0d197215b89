"""What one build is asked to do: the :class:`BuildOptions` the CLI fills and ``build()`` takes.

Example::

    from trustbuild.builder.options import BuildOptions
    opts = BuildOptions(context="app/", destinations=["127.0.0.1:5000/app:1"],
                        build_args={"VERSION": "1.2"}, reproducible=True)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TextIO

from trustbuild._internal.secrets import REDACTED, is_secret_name
from trustbuild.oci.descriptor import Platform
from trustbuild.registry.options import StoreOptions

if TYPE_CHECKING:
    from trustbuild.builder.events import BuildLog
    from trustbuild.oci.compression import Compression
    from trustbuild.sandbox.spec import ProfileName, Runner, SnapshotMode

__all__ = ["BuildOptions", "is_secret_name", "redact_build_args", "parse_build_args",
           "source_date_epoch", "BuildMode", "ExecMode", "ImageFormat", "LogFormat"]

#: --mode: "auto" resolves to an ExecMode (``container_fs.resolve_mode``)
BuildMode = Literal["auto", "chroot", "container"]
#: "chroot": stages in the work dir, RUN sandboxed; "container": Kaniko's way, the stage is "/"
ExecMode = Literal["chroot", "container"]
ImageFormat = Literal["oci", "docker"]  # --image-format
LogFormat = Literal["text", "json"]  # --log-format (the CLI maps Kaniko's "color" to "text")


def redact_build_args(args: Mapping[str, str]) -> dict[str, str]:
    """The build args with secret-looking values replaced by ``<redacted>``."""
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in args.items()}


def parse_build_args(items: Sequence[str], *,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``K=V`` items (bare ``K`` takes the environment's value, skipped when unset), last wins."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            from trustbuild.errors import UsageError
            raise UsageError(f"--build-arg {item!r}: expected KEY=VALUE or KEY")
        if sep:
            out[key] = value
        elif key in env:
            out[key] = env[key]
    return out


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` from the environment as an int (None when unset or invalid)."""
    env = os.environ if environ is None else environ
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    return int(raw) if raw.isdigit() else None


@dataclass
class BuildOptions:
    """One build request (Kaniko flag names in comments)."""

    context: str = "."  # --context: DIR, dir://DIR, tar://stdin, tar://FILE, git URL
    context_sub_path: str | None = None  # --context-sub-path
    dockerfile: str = "Dockerfile"  # --dockerfile ("-" = stdin)
    destinations: list[str] = field(default_factory=list)  # --destination (repeatable)
    build_args: dict[str, str] = field(default_factory=dict)  # --build-arg
    target: str | None = None  # --target
    labels: dict[str, str] = field(default_factory=dict)  # --label
    no_push: bool = False  # --no-push
    tar_path: str | None = None  # --tar-path (docker-archive)
    oci_layout_path: str | None = None  # --oci-layout-path
    digest_file: str | None = None  # --digest-file
    image_name_with_digest_file: str | None = None  # --image-name-with-digest-file
    image_name_tag_with_digest_file: str | None = None  # --image-name-tag-with-digest-file
    reproducible: bool = False  # --reproducible
    source_date_epoch: int | None = None  # SOURCE_DATE_EPOCH
    platform: Platform | None = None  # --custom-platform (default: this machine)
    platforms: list[Platform] = field(default_factory=list)  # --custom-platform A,B: an index
    compression: Compression = "gzip"  # --compression gzip|zstd
    compression_level: int | None = None  # --compression-level
    image_format: ImageFormat = "oci"  # --image-format oci|docker
    store_options: StoreOptions = field(default_factory=StoreOptions)
    log_format: LogFormat = "text"  # --log-format text|json
    log_timestamp: bool = False  # --log-timestamp
    verbose: int = 0
    skip_push_permission_check: bool = False  # --skip-push-permission-check
    # consumed by the sandbox (RUN)
    security_profile: ProfileName = "baseline"
    seccomp_profile: str | None = None
    mode: BuildMode = "auto"  # auto | chroot | container (Kaniko's way: build in "/")
    force: bool = False  # --force: container mode even where no container is detected
    # --kaniko-dir, else $KANIKO_DIR: container mode's work dir (never snapshotted)
    kaniko_dir: Path = Path("/kaniko")
    ignore_var_run: bool = True  # --ignore-var-run: leave /var/run out (container mode)
    # the work dir is renamed aside and deleted by a detached ``rm`` once the build is done,
    # off the critical path (the CLI); False: deleted before close() returns (the API)
    remove_work_dir_later: bool = False
    snapshot_mode: SnapshotMode = "auto"
    ignore_paths: list[str] = field(default_factory=list)  # --ignore-path
    # RUN --mount=type=secret / type=ssh: --secret values by id (held in memory only, never
    # printed) and --ssh agent sockets or key files by id
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    ssh: dict[str, list[str]] = field(default_factory=dict)
    # policy check (plan only, nothing runs): the --secret ids given, their values never read,
    # and no ssh agent started for --ssh key files
    plan_only: bool = False
    secret_ids: frozenset[str] = frozenset()
    # the step cache (docs/cache.md)
    cache: bool = False
    cache_repo: str | None = None
    cache_dir: str | None = None  # --cache-dir: the local layer store (None: none)
    cache_run_layers: bool = True  # --cache-run-layers: look up and store RUN steps
    cache_copy_layers: bool = True  # --cache-copy-layers: look up and store COPY/ADD steps
    cache_ttl: float | None = None  # --cache-ttl in seconds (None: entries never expire)
    no_push_cache: bool = False  # --no-push-cache: look steps up, never store them
    # plumbing (policy, signing and attestations: pipeline.SupplyChainOptions)
    runner_factory: Callable[..., Runner] | None = None  # default: sandbox.StepRunner
    stdin: BinaryIO | None = None
    output: TextIO = field(default_factory=lambda: sys.stderr)
    work_dir: str | None = None  # where rootfs/layers live (default: a temp dir)
    log: BuildLog | None = None  # prepare() makes one from log_format

    def epoch(self) -> int | None:
        """The fixed timestamp for created/history/mtimes, or None for "now"."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return 0 if self.reproducible else None

    def target_platform(self) -> Platform:
        """The platform being built (``--custom-platform`` or this machine)."""
        return self.platform or Platform.host()
