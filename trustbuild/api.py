"""The Python API: build, sign, attest and verify in a few calls (re-exported by ``trustbuild``).

Every image argument is a location as the CLI takes it: a registry reference (``host/repo:tag``
or ``docker://...``) or an OCI layout (``oci:DIR[:TAG]``). Keys are paths to cosign-format (or
PEM) key files, or already loaded keys. Failures raise :class:`trustbuild.errors.TrustbuildError`
subclasses; a verification that runs but finds nothing valid returns a result with ``ok`` false.

Example::

    import trustbuild

    built = trustbuild.build("app/", oci_layout_path="out", sign_key="cosign.key",
                             attest=["provenance"], destinations=["registry.example/app:1"])
    assert trustbuild.verify("oci:out", key="cosign.pub").ok
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from trustbuild.attest.verify import AttestationResult
from trustbuild.builder.options import BuildOptions, source_date_epoch
from trustbuild.builder.record import BuildRecord
from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.store import Store
from trustbuild.registry.options import StoreOptions
from trustbuild.sandbox.spec import ProfileName
from trustbuild.sign.keys import SigningKey, VerifyingKey, load_signing_key, load_verifying_key
from trustbuild.sign.sign import SignResult
from trustbuild.sign.verify import VerifyResult
from trustbuild.store.location import Location, parse_location
from trustbuild.store.open import open_store

__all__ = ["BuildResult", "build", "sign", "verify", "attest", "verify_attestation"]

KeyArg = str | Path


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` produced: the manifest digest, where it was written, the record."""

    digest: str  # sha256:... of the manifest
    descriptor: Descriptor
    outputs: list[str]  # every location written (docker://..., oci:..., docker-archive:...)
    record: BuildRecord  # inputs by digest, steps, timings: what provenance is made from
    signed: list[str] = field(default_factory=list)  # "location@digest"
    attested: list[str] = field(default_factory=list)  # "location@digest kind"


def build(context: str | Path = ".", *, dockerfile: str = "Dockerfile",
          destinations: Sequence[str] = (), build_args: Mapping[str, str] | None = None,
          target: str | None = None, oci_layout_path: str | None = None,
          tar_path: str | None = None, no_push: bool = False, policy: str | None = None,
          sign_key: str | None = None, attest: Sequence[str] = (),
          security_profile: ProfileName = "baseline", store_options: StoreOptions | None = None,
          **options: object) -> BuildResult:
    """Build ``context`` (a directory, ``tar://FILE`` or a git URL) like ``trustbuild build``.

    ``destinations`` are pushed unless ``no_push`` (then the first one only names the image, as
    with Kaniko's ``--no-push``); ``oci_layout_path`` / ``tar_path`` write local copies.
    ``policy`` gates the build; ``sign_key`` signs every output and ``attest`` (``provenance``,
    ``sbom``) attaches signed attestations. Other keywords are :class:`BuildOptions` or
    :class:`trustbuild.pipeline.SupplyChainOptions` fields (``bundle``, ``keyless``,
    ``sbom_format``, ``builder_id``, ``executor_image``, ...); an unknown one is a TypeError.
    """
    from trustbuild.pipeline import SupplyChainOptions
    from trustbuild.pipeline import run as run_pipeline

    if not destinations and not oci_layout_path and not tar_path:
        raise UsageError("build: give destinations, oci_layout_path or tar_path")
    chain = SupplyChainOptions(policy=policy, sign_key=sign_key, attest=list(attest))
    opts = BuildOptions(
        context=str(context), dockerfile=dockerfile, destinations=list(destinations),
        build_args=dict(build_args or {}), target=target, oci_layout_path=oci_layout_path,
        tar_path=tar_path, no_push=no_push, security_profile=security_profile,
        store_options=store_options or StoreOptions(progress=False), output=sys.stderr,
        source_date_epoch=None if "source_date_epoch" in options else source_date_epoch())
    chain_fields = {f.name for f in fields(SupplyChainOptions)}
    build_fields = {f.name for f in fields(BuildOptions)}
    for name, value in options.items():
        if name in chain_fields:
            setattr(chain, name, value)
        elif name in build_fields:
            setattr(opts, name, value)
        else:
            raise TypeError(f"build() got an unexpected keyword argument {name!r}")
    with run_pipeline(opts, chain) as result:
        built = result.built
        return BuildResult(digest=built.digest, descriptor=built.descriptor,
                          outputs=[o.location for o in built.outputs], record=built.record,
                          signed=list(result.signed), attested=list(result.attested))


def _open(image: str, store_options: StoreOptions | None) -> tuple[Location, Store, str | None]:
    location = parse_location(image)
    store, ref = open_store(location, store_options or StoreOptions(progress=False))
    return location, store, ref


def _docker_reference(location: Location, given: str | None) -> str | None:
    from trustbuild.oci.reference import Reference

    if given:
        return Reference.parse(given).name
    return location.reference.name if location.reference is not None else None


def sign(image: str, key: KeyArg | SigningKey, *, docker_reference: str | None = None,
         bundle: bool = False, annotations: Mapping[str, str] | None = None,
         store_options: StoreOptions | None = None) -> SignResult:
    """Sign ``image`` as ``cosign sign --key`` does (``bundle`` adds a Sigstore bundle referrer).

    ``docker_reference`` (the repository the image is pulled as) is required outside a registry.
    """
    from trustbuild.sign.sign import sign_image

    signing_key = key if isinstance(key, SigningKey) else load_signing_key(key)
    location, store, ref = _open(image, store_options)
    name = _docker_reference(location, docker_reference)
    if name is None:
        store.close()
        raise UsageError(f"sign {image}: give docker_reference (the repository it is pulled as)")
    try:
        result = sign_image(store, ref, signing_key, docker_reference=name,
                            annotations=dict(annotations or {}), bundle=bundle)
    finally:
        store.close()
    return result


def verify(image: str, *, key: KeyArg | VerifyingKey | Sequence[KeyArg | VerifyingKey],
           docker_reference: str | None = None, signed_identity: str | None = None,
           store_options: StoreOptions | None = None) -> VerifyResult:
    """Check ``image``'s signatures against ``key`` (one or several) as ``cosign verify`` does.

    ``signed_identity`` is a containers/image ``signedIdentity`` (``"matchRepoDigestOrExact"``,
    ``"exactRepository:REPO"``, ... or its JSON) instead of the repository check.
    """
    from trustbuild.sign.identity import SignedIdentity
    from trustbuild.sign.verify import verify_image

    given: Sequence[KeyArg | VerifyingKey] = (
        [key] if isinstance(key, str | Path | VerifyingKey) else key)
    keys = [k if isinstance(k, VerifyingKey) else load_verifying_key(k) for k in given]
    identity = SignedIdentity.parse(signed_identity) if signed_identity else None
    location, store, ref = _open(image, store_options)
    try:
        return verify_image(store, ref, keys=keys,
                            docker_reference=_docker_reference(location, docker_reference),
                            identity=identity,
                            image_reference=docker_reference or (
                                str(location.reference) if location.reference else None))
    finally:
        store.close()


def attest(image: str, key: KeyArg | SigningKey, *, predicate: bytes | dict[str, object],
           predicate_type: str, replace: bool = False,
           store_options: StoreOptions | None = None) -> Descriptor:
    """Attach a signed in-toto attestation of ``predicate`` (``cosign attest``).

    ``predicate_type`` is a cosign short name (``slsaprovenance``, ``spdxjson``, ...) or a URI.
    Returns the descriptor of the ``.att`` manifest.
    """
    from trustbuild.attest.attach import attest_image

    signing_key = key if isinstance(key, SigningKey) else load_signing_key(key)
    location, store, ref = _open(image, store_options)
    try:
        return attest_image(store, ref, key=signing_key, predicate=predicate,
                            predicate_type=predicate_type, replace=replace,
                            subject_name=_docker_reference(location, None) or "")
    finally:
        store.close()


def verify_attestation(image: str, *, key: KeyArg | VerifyingKey, predicate_type: str | None = None,
                       store_options: StoreOptions | None = None) -> AttestationResult:
    """Check the attestations of ``image`` (``cosign verify-attestation --key``)."""
    from trustbuild.attest.verify import verify_attestations

    verifying_key = key if isinstance(key, VerifyingKey) else load_verifying_key(key)
    _location, store, ref = _open(image, store_options)
    try:
        return verify_attestations(
            store, ref, keys=[verifying_key], image=image,
            predicate_type=predicate_type)
    finally:
        store.close()
