"""``trustbuild build``: Dockerfile + context in, image out (Kaniko's flag names)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from trustbuild.cli.common import add_keyless_sign_flags, add_registry_flags, store_options
from trustbuild.cli.kaniko_compat import (
    add_kaniko_flags,
    add_verbosity_flag,
    apply_kaniko_flags,
    pflag_bools,
    registry_client_certs,
    registry_maps,
)
from trustbuild.errors import UsageError

if TYPE_CHECKING:
    from trustbuild.builder.options import BuildOptions
    from trustbuild.oci.descriptor import Platform
    from trustbuild.pipeline import SupplyChainOptions

__all__ = ["register", "run", "options_from_args", "supply_chain_from_args", "secret_options"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build`` subcommand."""
    p = sub.add_parser(
        "build", help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a build context without a daemon, "
                    "then push it to every --destination (and/or write it to files).")
    g = p.add_argument_group("inputs")
    g.add_argument("--context", "-c", default=".", metavar="CONTEXT",
                   help="build context: a directory (default .), dir://PATH, tar://stdin, "
                        "tar://FILE (tar or tar.gz), git://host/repo.git#REF[#COMMIT] or "
                        "https://host/repo.git#REF")
    g.add_argument("--context-sub-path", metavar="PATH",
                   help="use this sub-directory of the context as the context")
    g.add_argument("--dockerfile", "-f", default="Dockerfile", metavar="PATH",
                   help="Dockerfile path, relative to the context or absolute; - reads stdin "
                        "(default: Dockerfile)")
    g.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="set a build argument (repeatable); a bare KEY takes its value from "
                        "the environment")
    g.add_argument("--target", metavar="STAGE",
                   help="build this stage (name or index) instead of the last one; only the "
                        "stages it needs are built")
    g.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="add a label to the final image (repeatable)")
    g.add_argument("--custom-platform", metavar="OS/ARCH[/VARIANT][,...]",
                   help="platform to build for (base images are picked from indexes for it; "
                        "default: this machine); a comma list builds each and pushes one "
                        "image index (foreign RUN steps run under qemu-user-static)")
    g.add_argument("--platform", dest="build_platform", metavar="OS/ARCH[/VARIANT][,...]",
                   help="the same as --custom-platform (buildah's, podman's and docker "
                        "buildx's name)")

    o = p.add_argument_group("outputs")
    o.add_argument("--destination", "-d", action="append", default=[], metavar="REF",
                   help="push the image here (repeatable; all tags get the same digest)")
    o.add_argument("--no-push", action="store_true",
                   help="build only; do not push to the destinations")
    o.add_argument("--tar-path", metavar="FILE",
                   help="also write a docker-archive tarball (docker/podman load)")
    o.add_argument("--oci-layout-path", metavar="DIR",
                   help="also write an OCI image layout (tagged with the first destination's "
                        "tag, else latest)")
    o.add_argument("--digest-file", metavar="FILE", help="write the image's manifest digest here")
    o.add_argument("--image-name-with-digest-file", metavar="FILE",
                   help="write NAME@DIGEST for every destination here, one a line")
    o.add_argument("--reproducible", action="store_true",
                   help="fixed timestamps (SOURCE_DATE_EPOCH, else 0) in layers, history and "
                        "config: the same input gives the same digest")
    o.add_argument("--compression", choices=("gzip", "zstd"), default="gzip",
                   help="layer compression (default gzip)")
    o.add_argument("--compression-level", type=int, metavar="N",
                   help="compression level (gzip 1-9, zstd 1-22)")
    o.add_argument("--image-format", choices=("oci", "docker"), default="oci",
                   help="manifest and config media types: OCI (default) or Docker schema2")
    o.add_argument("--log-format", choices=("text", "color", "json"), default="text",
                   help="text progress on stderr (default; color is the same), or json: one "
                        "JSON event per line on stderr and the result as JSON on stdout")

    add_registry_flags(p, pull_flags=False)
    _add_secret_flags(p)

    s = p.add_argument_group("RUN sandbox")
    s.add_argument("--security-profile", default="baseline", metavar="NAME",
                   help="security profile for RUN steps (default baseline)")
    s.add_argument("--seccomp-profile", metavar="NAME|FILE",
                   help="seccomp profile for RUN steps (default: the security profile's)")
    s.add_argument("--mode", choices=("auto", "chroot", "container"), default="auto",
                   help="chroot: RUN in the sandbox; container: build in / of this container "
                        "as Kaniko does; auto (default): chroot where the sandbox can start, "
                        "else container")
    s.add_argument("--force", action="store_true",
                   help="experts only: allow --mode container where no container is detected "
                        "(it deletes and rewrites /)")
    s.add_argument("--snapshot-mode", default="auto", metavar="MODE",
                   help="how RUN changes are detected: auto (default), overlay, walk, full; "
                        "Kaniko's redo and time map to walk")
    s.add_argument("--ignore-path", action="append", default=[], metavar="PATH",
                   help="leave this path out of RUN snapshots (repeatable)")

    x = p.add_argument_group("cache, signing, attestation, policy")
    x.add_argument("--cache", action="store_true",
                   help="reuse RUN/COPY/ADD/WORKDIR layers from the cache repository and store "
                        "new ones there (docs/cache.md)")
    x.add_argument("--cache-repo", metavar="REPO",
                   help="cache repository (REGISTRY/REPO or oci:DIR; default: the first "
                        "destination's repository + /cache); only the builder should write it")
    x.add_argument("--no-cache-dir", action="store_true",
                   help="keep no layers between builds (by default --cache uses the local "
                        "layer store at --cache-dir, else $XDG_CACHE_HOME/trustbuild, "
                        "/var/cache/trustbuild as root; docs/cache.md)")
    x.add_argument("--sign-key", metavar="KEY", help="sign the pushed image with this cosign key")
    add_keyless_sign_flags(x, what="(and attest) the pushed image")
    x.add_argument("--bundle", action="store_true",
                   help="also attach the signature (and attestations) as Sigstore bundle v0.3 "
                        "OCI referrers, as cosign 3 does")
    x.add_argument("--attest", default="", metavar="LIST",
                   help="attach attestations: comma list of provenance,sbom")
    x.add_argument("--sbom-format", choices=("spdx", "cyclonedx"), default="spdx",
                   help="SBOM format for --attest sbom (default spdx)")
    x.add_argument("--builder-id", metavar="URI", help="builder.id recorded in provenance")
    x.add_argument("--policy", metavar="FILE", help="policy file the build must satisfy")
    x.add_argument("--executor-image", metavar="REF",
                   help="the executor image this build runs in (for policy and provenance)")
    add_kaniko_flags(p)
    add_verbosity_flag(p)
    pflag_bools(p)
    p.set_defaults(func=run)


# --- build secrets (RUN --mount=type=secret|ssh): kept in one block -------------------------
def _add_secret_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("build secrets")
    g.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
                   help="a secret for RUN --mount=type=secret (repeatable; buildx syntax: "
                        "id=ID,src=FILE or id=ID,env=VAR, type=file|env); never stored in the "
                        "image, cache, record or logs")
    g.add_argument("--ssh", action="append", default=[], metavar="default|ID[=SOCKET|KEY[,KEY]]",
                   help="an ssh agent for RUN --mount=type=ssh (repeatable; default or a bare "
                        "ID uses $SSH_AUTH_SOCK; key files get their own ssh-agent)")


def secret_options(options: BuildOptions, args: argparse.Namespace) -> None:
    """``--secret`` / ``--ssh`` into ``options`` (with ``plan_only``: the secret ids only)."""
    from trustbuild.builder.buildsecrets import load_secrets, parse_ssh_flags, secret_ids

    if options.plan_only:  # policy check: which secrets are given, never their values
        options.secret_ids = secret_ids(getattr(args, "secret", None) or [])
    else:
        options.secrets = load_secrets(getattr(args, "secret", None) or [])
    options.ssh = parse_ssh_flags(getattr(args, "ssh", None) or [])
# --- end build secrets ------------------------------------------------------------------------


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k or not sep:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


def _warn(msg: str) -> None:
    print(f"[warning] {msg}", file=sys.stderr)


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """BuildOptions from parsed arguments (usage errors for bad values)."""
    from trustbuild.builder.options import BuildOptions, parse_build_args, source_date_epoch
    from trustbuild.oci.reference import Reference

    apply_kaniko_flags(args, warn=_warn)
    if not args.destination and not args.no_push and not args.tar_path \
            and not args.oci_layout_path:
        raise UsageError("nothing to do: give --destination, or --no-push with --tar-path / "
                         "--oci-layout-path")
    sopts = store_options(args)
    from trustbuild.builder.layerstore import default_cache_dir

    cache_dir = args.cache_dir or (str(default_cache_dir()) if args.cache else None)
    if args.no_cache_dir:
        cache_dir = None
    platforms = _platforms(args)
    platform = platforms[0] if platforms else None
    sopts.platform = platform
    sopts.skip_tls_verify_registries = tuple(args.skip_tls_verify_registry)
    sopts.registry_maps = registry_maps(args.registry_map)
    sopts.registry_client_certs = registry_client_certs(args.registry_client_cert)
    sopts.skip_default_registry_fallback = args.skip_default_registry_fallback
    if args.insecure:  # Kaniko: push (destinations and the cache repository) over plain HTTP
        hosts = [Reference.parse(d.removeprefix("docker://")).registry
                 for d in args.destination]
        if args.cache_repo and not args.cache_repo.startswith("oci:"):
            hosts.append(Reference.parse(args.cache_repo).registry)
        sopts.insecure_registries = (*sopts.insecure_registries, *hosts)
    return BuildOptions(
        context=args.context, context_sub_path=args.context_sub_path, dockerfile=args.dockerfile,
        destinations=list(args.destination), build_args=parse_build_args(args.build_arg),
        target=args.target, labels=_pairs(args.label, "--label"), no_push=args.no_push,
        tar_path=args.tar_path, oci_layout_path=args.oci_layout_path,
        digest_file=args.digest_file, image_name_with_digest_file=args.image_name_with_digest_file,
        image_name_tag_with_digest_file=args.image_name_tag_with_digest_file,
        reproducible=args.reproducible, source_date_epoch=source_date_epoch(),
        platform=platform, platforms=platforms if len(platforms) > 1 else [],
        compression=args.compression, compression_level=args.compression_level,
        image_format=args.image_format, store_options=sopts, log_format=args.log_format,
        log_timestamp=args.log_timestamp, verbose=args.verbose,
        skip_push_permission_check=args.skip_push_permission_check,
        security_profile=args.security_profile,
        seccomp_profile=args.seccomp_profile, mode=args.mode, force=args.force,
        snapshot_mode=args.snapshot_mode, ignore_paths=list(args.ignore_path),
        kaniko_dir=args.kaniko_dir, ignore_var_run=args.ignore_var_run, cache=args.cache,
        cache_repo=args.cache_repo, cache_dir=cache_dir, cache_ttl=args.cache_ttl_seconds,
        no_push_cache=args.no_push_cache, cache_run_layers=args.cache_run_layers,
        cache_copy_layers=args.cache_copy_layers, stdin=sys.stdin.buffer, output=sys.stderr,
        # the command is done when the image is; a detached rm deletes the work dir (at once
        # when pid 1 is near: _internal.removal)
        remove_work_dir_later=True)


def _platforms(args: argparse.Namespace) -> list[Platform]:
    """The platform list of --custom-platform or --platform (both: only if they are equal)."""
    from trustbuild.builder.multiplatform import parse_platforms

    custom = parse_platforms(args.custom_platform) if args.custom_platform else None
    other = (parse_platforms(args.build_platform, flag="--platform")
             if args.build_platform else None)
    if custom is not None and other is not None and custom != other:
        raise UsageError(f"--platform {args.build_platform!r} and --custom-platform "
                         f"{args.custom_platform!r} differ: give one of them")
    return custom or other or []


def supply_chain_from_args(args: argparse.Namespace) -> SupplyChainOptions:
    """SupplyChainOptions (policy, signing, attestations, executor image) from parsed arguments."""
    from trustbuild.pipeline import SupplyChainOptions

    attest = [a.strip() for a in (args.attest or "").split(",") if a.strip()]
    for a in attest:
        if a not in ("provenance", "sbom"):
            raise UsageError(f"--attest {a!r}: expected a comma list of provenance,sbom")
    return SupplyChainOptions(
        policy=args.policy, sign_key=args.sign_key, keyless=args.keyless,
        identity_token=args.identity_token, sigstore_trust_config=args.sigstore_trust_config,
        bundle=args.bundle, attest=attest, sbom_format=args.sbom_format,
        builder_id=args.builder_id, executor_image=args.executor_image)


def run(args: argparse.Namespace) -> int:
    """Build; print the digest (text) or the result (json) on stdout.

    With ``--log-format json`` a failure is a JSON error object on stderr (``{"event":
    "error", "error": ..., "type": ...}``) and the exit code of the error."""
    from trustbuild.errors import TrustbuildError

    try:
        return _run(args)
    except TrustbuildError as err:
        if args.log_format != "json" or args.verbose:
            raise
        from trustbuild.builder.events import BuildLog

        BuildLog(sys.stderr, fmt="json").error(str(err), kind=type(err).__name__)
        return err.exit_code


def _run(args: argparse.Namespace) -> int:
    from trustbuild.sandbox import userns

    if userns.needed():  # not root: build as root of a user namespace (docs/rootless.md)
        return userns.run_in_user_namespace(userns.build_command(
            getattr(args, "raw_argv", sys.argv[1:])))
    from trustbuild.builder.events import BuildLog
    from trustbuild.pipeline import run as run_pipeline

    options = options_from_args(args)
    chain = supply_chain_from_args(args)
    secret_options(options, args)
    # one log for the build and the supply chain around it (gate report, signing)
    options.log = BuildLog(options.output, fmt=options.log_format,
                           timestamps=options.log_timestamp)
    options.output = options.log.stream
    with run_pipeline(options, chain) as result:
        built = result.built
        if args.log_format == "json":
            print(json.dumps({"digest": built.digest, "mediaType": built.descriptor.media_type,
                              "size": built.descriptor.size,
                              "outputs": [o.location for o in built.outputs],
                              "record": built.record.to_json(),
                              # an index: each platform's manifest and record
                              "manifests": [{"platform": c.record.platform, "digest": c.digest,
                                             "record": c.record.to_json()}
                                            for c in built.children]}, indent=2))
        else:
            print(built.digest)
    return 0
