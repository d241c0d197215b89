"""Multi-platform builds: ``--custom-platform linux/amd64,linux/arm64`` -> one image index.

The same phases as one platform (builder.plan): :func:`prepare_index` prepares one plan per
platform (its own base picked from the base image's index, ``TARGET*`` args for that platform,
every image pinned by digest), so a gate sees every platform before anything runs;
``IndexPlan.run()`` builds each platform (foreign RUN through qemu-user, see
builder.emulation) and assembles the index; :func:`write_index_outputs` pushes every platform
manifest by digest to every destination (and the OCI layout), the index after them. Signing
and attestations then cover each platform manifest and the index, and only then are the tags
set and the digest files written (builder.api.put_tags, with the index digest). Example::

    opts = BuildOptions(context="app", destinations=["127.0.0.1:5000/app:1"],
                        platforms=parse_platforms("linux/amd64,linux/arm64"))
    with build(opts) as built:           # builder.api.build: all the phases, no supply chain
        built.digest                     # the index
        [c.digest for c in built.children]   # one BuiltImage per platform
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from trustbuild.builder.assemble import AssembledImage
from trustbuild.builder.dockerfile import Dockerfile
from trustbuild.builder.options import BuildOptions
from trustbuild.builder.outputs import (
    WrittenOutput,
    push_destinations,
    validate_destinations,
    write_oci_layout,
)
from trustbuild.builder.plan import (
    BuildPlan,
    BuiltImage,
    preflight,
    prepare_platform,
    push_check_first,
    setup_log,
)
from trustbuild.builder.record import BuildRecord
from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.reference import Reference
from trustbuild.store.location import Location

__all__ = ["IndexPlan", "prepare_index", "write_index_outputs", "parse_platforms"]


def parse_platforms(text: str, *, flag: str = "--custom-platform") -> list[Platform]:
    """``linux/amd64,linux/arm64`` -> platforms (a usage error for an empty or repeated one)."""
    out: list[Platform] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"{flag} {text!r}: empty platform in the list; expected "
                             "os/arch[/variant],... e.g. linux/amd64,linux/arm64")
        plat = _normalize(Platform.parse(part))
        if plat in out:
            raise UsageError(f"{flag} {text!r}: {plat} is listed twice")
        out.append(plat)
    return out


def _normalize(p: Platform) -> Platform:
    """As containerd normalises: arm64/v8 is plain arm64."""
    if p.architecture == "arm64" and p.variant == "v8":
        return Platform(p.os, p.architecture)
    return p


def _child_options(options: BuildOptions, plat: Platform, stdin_file: Path | None
                   ) -> BuildOptions:
    """The single-platform build: no outputs of its own (the index build writes them)."""
    sopts = dataclasses.replace(options.store_options, platform=plat)
    return dataclasses.replace(
        options, platform=plat, platforms=[], no_push=True, tar_path=None,
        oci_layout_path=None, digest_file=None, image_name_with_digest_file=None,
        image_name_tag_with_digest_file=None,
        skip_push_permission_check=True, store_options=sopts, mode="chroot",
        stdin=open(stdin_file, "rb") if stdin_file else options.stdin,  # noqa: SIM115
        build_args=dict(options.build_args), labels=dict(options.labels))


def _uses_stdin(options: BuildOptions) -> bool:
    return options.dockerfile == "-" or options.context == "tar://stdin"


def _index(children: list[tuple[Platform, BuiltImage]], image_format: str) -> AssembledImage:
    manifests = [Descriptor(r.descriptor.media_type, r.descriptor.digest, r.descriptor.size,
                            platform=plat).to_json() for plat, r in children]
    docker = image_format == "docker"
    mt = str(MediaType.DOCKER_MANIFEST_LIST if docker else MediaType.OCI_INDEX)
    raw = dump_json({"schemaVersion": 2, "mediaType": mt, "manifests": manifests})
    empty = Descriptor.for_bytes(str(MediaType.OCI_CONFIG), b"")
    return AssembledImage(raw, mt, b"", empty, ())


def _write_index(options: BuildOptions, index: AssembledImage, refs: list[Reference]
                 ) -> list[WrittenOutput]:
    """The index by digest to every destination and the layout (its children are there)."""
    from trustbuild.oci.layout import LayoutStore
    from trustbuild.store.open import open_store

    out: list[WrittenOutput] = []
    try:
        if refs and not options.no_push:
            groups: dict[str, list[Reference]] = {}
            for ref in refs:
                groups.setdefault(ref.name, []).append(ref)
            for group in groups.values():
                for r in group:
                    if r.digest is not None and r.digest != index.descriptor.digest:
                        raise UsageError(f"--destination {r}: the built index has digest "
                                         f"{index.descriptor.digest}, not {r.digest}")
                store, _ = open_store(Location("docker", group[0]), options.store_options,
                                      for_write=True)
                tags = sorted({r.tag for r in group if r.tag})
                desc = store.put_manifest(index.manifest_raw, index.media_type)
                print(f"pushed {group[0].name}@{desc.digest} (index)", file=options.output)
                out.append(WrittenOutput(f"docker://{group[0].name}", store, tags, desc,
                                         tagged=not tags, raw=index.manifest_raw,
                                         media_type=index.media_type))
        if options.oci_layout_path:
            tag = next((r.tag for r in refs if r.tag), None) or "latest"
            lstore = LayoutStore(options.oci_layout_path)
            desc = lstore.put_manifest(index.manifest_raw, index.media_type)
            lstore.close()
            out.append(WrittenOutput(f"oci:{options.oci_layout_path}:{tag}", lstore, [tag], desc,
                                     tagged=False, raw=index.manifest_raw,
                                     media_type=index.media_type))
    except BaseException:
        for o in out:
            o.store.close()
        raise
    return out


def _index_record(options: BuildOptions, children: list[tuple[Platform, BuiltImage]],
                  index: AssembledImage) -> BuildRecord:
    """One record for the index: every platform's inputs and steps, the index as result."""
    first: BuildRecord = children[0][1].record
    rec = dataclasses.replace(first, images=[], steps=[], policy_report=[])
    rec.platform = ",".join(str(p) for p, _ in children)
    for _, r in children:
        rec.images += [i for i in r.record.images if i not in rec.images]
        rec.steps += r.record.steps
        rec.policy_report += r.record.policy_report
        rec.finished_on = max(rec.finished_on, r.record.finished_on)
    rec.result_digest = str(index.descriptor.digest)
    rec.result_media_type = index.media_type
    rec.config_digest = None
    return rec


def _write_child(options: BuildOptions, image: AssembledImage, refs: list[Reference]
                 ) -> list[WrittenOutput]:
    """One platform's image by digest to every destination and the layout (never tagged)."""
    outputs: list[WrittenOutput] = []
    if refs and not options.no_push:
        # a destination's @digest names the index, not this platform's manifest
        plain = [dataclasses.replace(r, digest=None) for r in refs]
        outputs += push_destinations(image, plain, options.store_options, output=options.output,
                                     log=options.log, tag=False)
    if options.oci_layout_path:
        tag = next((r.tag for r in refs if r.tag), None) or "latest"
        outputs.append(write_oci_layout(image, options.oci_layout_path, tag=tag, tag_now=False))
    return outputs


class IndexPlan:
    """A multi-platform build, ready to run: one :class:`BuildPlan` per platform (``plans``),
    each with its images pinned by digest; ``run()`` builds them in turn and assembles the
    index. ``close()`` releases the plans not run."""

    def __init__(self, options: BuildOptions, plans: list[BuildPlan],
                 stdin_handles: list[BinaryIO], spool: Path) -> None:
        self.options = options
        self.plans = plans
        self._stdin = stdin_handles
        self._spool: Path | None = spool

    @property
    def dockerfile(self) -> Dockerfile:
        """The parsed Dockerfile (the same for every platform)."""
        return self.plans[0].dockerfile

    def run(self) -> BuiltImage:
        """Build every platform, then the index; nothing is pushed or tagged."""
        children: list[tuple[Platform, BuiltImage]] = []
        try:
            for plan in self.plans:
                plat = plan.options.target_platform()
                print(f"building for {plat}", file=self.options.output)
                children.append((plat, plan.run()))
            index = _index(children, self.options.image_format)
            record = _index_record(self.options, children, index)
        except BaseException:
            for _, child in children:
                child.close()
            self.close()
            raise
        self._cleanup()
        first = children[0][1]

        def materialize() -> None:  # the index's rootfs is the first platform's
            first.rootfs  # noqa: B018 - extracts it on first use

        return BuiltImage(str(index.descriptor.digest), index.descriptor, record, index,
                          first.dockerfile, first.rootfs_dir,
                          children=[r for _, r in children], materialize=materialize)

    def _cleanup(self) -> None:
        for f in self._stdin:
            f.close()
        self._stdin = []
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def close(self) -> None:
        """Release every platform's plan that was not run."""
        try:
            for plan in self.plans:
                plan.close()
        finally:
            self._cleanup()

    def __enter__(self) -> IndexPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_index(options: BuildOptions) -> IndexPlan:
    """Prepare every platform of ``options.platforms`` (builder.plan.prepare_platform, the push
    permission check once); raises a usage error for outputs an index cannot have."""
    validate_destinations(options.destinations)
    if options.tar_path:
        raise UsageError("--tar-path cannot hold a multi-platform image: build one "
                         "--custom-platform for a tarball, or use --oci-layout-path")
    if options.mode == "container":
        raise UsageError("a multi-platform build needs --mode chroot (container mode builds "
                         "in / of this container, one platform only)")
    setup_log(options)
    checked = preflight(options)
    spool: Path | None = None
    stdin_file: Path | None = None
    handles: list[BinaryIO] = []
    plans: list[BuildPlan] = []
    try:
        spool = Path(tempfile.mkdtemp(prefix="trustbuild-multi-", dir=options.work_dir))
        if _uses_stdin(options) and options.stdin is not None:
            stdin_file = spool / "stdin"
            with open(stdin_file, "wb") as f:
                shutil.copyfileobj(options.stdin, f)
        for plat in options.platforms:
            child_opts = _child_options(options, plat, stdin_file)
            if stdin_file is not None and child_opts.stdin is not None:
                handles.append(child_opts.stdin)
            plans.append(prepare_platform(child_opts))
        checked()
    except BaseException as exc:
        try:
            for plan in plans:
                plan.close()
            for h in handles:
                h.close()
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)
        finally:
            push_check_first(checked, exc)
        raise
    return IndexPlan(options, plans, handles, spool)


def write_index_outputs(built: BuiltImage, options: BuildOptions) -> list[WrittenOutput]:
    """Every platform's image by digest, then the index by digest, to every destination and
    the OCI layout (never tagged here); returns the index's outputs."""
    refs = validate_destinations(options.destinations)
    for child in built.children:
        child.outputs = _write_child(options, child.image, refs)
    built.outputs = _write_index(options, built.image, refs)
    return built.outputs
