"""The build in phases: ``prepare`` -> ``plan.run()`` -> ``write_outputs`` -> ``put_tags``.

Each phase is a plain call, so a caller (trustbuild.pipeline) puts its own steps between them:
the policy gate after ``prepare`` (every image is pinned by digest, nothing pulled, extracted or
run yet), signing and attestations after ``write_outputs`` (every output is there by digest,
untagged), and only then ``put_tags``: nothing unsigned is ever tagged. :func:`build` runs the
phases back to back for a build without a supply chain. Example::

    from trustbuild.builder.api import prepare, put_tags, write_outputs
    from trustbuild.builder.options import BuildOptions

    options = BuildOptions(context="app", destinations=["127.0.0.1:5000/app:1"])
    with prepare(options) as plan:
        plan.images                      # every FROM / COPY --from image, by digest
        built = plan.run()               # layers, config, manifest: nothing pushed
    with built:
        write_outputs(built, options)    # registry destinations and the OCI layout, by digest
        put_tags(built, options)         # tags, the docker-archive tarball, the digest files
        built.digest, built.record       # sha256:..., inputs by digest, steps and timings
        built.rootfs                     # the target stage's filesystem (until close())
"""

from __future__ import annotations

from trustbuild.builder.multiplatform import IndexPlan, prepare_index, write_index_outputs
from trustbuild.builder.options import BuildOptions
from trustbuild.builder.outputs import (
    WrittenOutput,
    apply_tags,
    push_destinations,
    validate_destinations,
    write_digest_files,
    write_docker_archive,
    write_oci_layout,
)
from trustbuild.builder.plan import BuildPlan, BuiltImage, prepare_platform

__all__ = ["prepare", "write_outputs", "put_tags", "build", "BuildPlan", "IndexPlan",
           "BuiltImage"]


def prepare(options: BuildOptions) -> BuildPlan | IndexPlan:
    """The build up to its first pulled layer: one plan, or one per platform for several
    ``options.platforms`` (an index). Close it (``with``) unless it is run."""
    if len(options.platforms) > 1:
        return prepare_index(options)
    return prepare_platform(options)


def write_outputs(built: BuiltImage, options: BuildOptions) -> list[WrittenOutput]:
    """Push to every destination and write the OCI layout, by digest only (an index: every
    platform's manifest first); sets and returns ``built.outputs``. Tags come with put_tags."""
    if built.children:
        return write_index_outputs(built, options)
    refs = validate_destinations(options.destinations)
    outputs: list[WrittenOutput] = built.outputs
    if refs and not options.no_push:
        outputs += push_destinations(built.image, refs, options.store_options,
                                     output=options.output, log=options.log, tag=False)
    if options.oci_layout_path:
        tag = next((r.tag for r in refs if r.tag), None) or "latest"
        outputs.append(write_oci_layout(built.image, options.oci_layout_path, tag=tag,
                                        tag_now=False))
    return outputs


def put_tags(built: BuiltImage, options: BuildOptions) -> None:
    """The last phase: point every output's tags at the manifest, then write the
    docker-archive tarball (it carries the tags) and the digest files."""
    refs = validate_destinations(options.destinations)
    apply_tags(built.outputs, output=options.output)
    if options.tar_path:
        tags = [str(r) for r in refs if r.tag]
        built.outputs.append(write_docker_archive(built.image, options.tar_path, tags=tags))
    write_digest_files(built.digest, refs, digest_file=options.digest_file,
                       name_file=options.image_name_with_digest_file,
                       name_tag_file=options.image_name_tag_with_digest_file)


def build(options: BuildOptions) -> BuiltImage:
    """Every phase, no gate, no signing: prepare, run, write the outputs, put the tags.

    Raises a TrustbuildError on failure (leaving no tag); close the result (``with``)."""
    try:
        with prepare(options) as plan:
            built = plan.run()
        try:
            write_outputs(built, options)
            put_tags(built, options)
        except BaseException:
            built.close()
            raise
        return built
    finally:
        if options.log is not None:
            options.log.close()
