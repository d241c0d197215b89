"""The policy file as ``schema.json`` describes it, as TypedDicts.

:func:`trustbuild.policy.model.parse_policy` validates a document against the schema before it
is read as a :class:`PolicyDocument`; :class:`~trustbuild.policy.model.Policy` keeps it as
``raw`` (the renderers copy it into ConfigMaps with keys and files inlined).
"""

from __future__ import annotations

from typing import Required, TypedDict

from trustbuild.sandbox.spec import ProfileName, StepNetwork

__all__ = ["PolicyDocument", "SpecDoc", "MetadataDoc", "ImagesDoc", "ExecutorDoc",
           "DockerfileDoc", "BuildDoc", "OutputDoc", "SignatureDoc", "AttestationDoc",
           "KeylessDoc", "PKIDoc", "SignedIdentityDoc"]


class KeylessDoc(TypedDict, total=False):
    """``keyless``: a Fulcio certificate identity."""

    issuer: str
    issuerRegExp: str
    subject: str
    subjectRegExp: str
    trustedRoot: str


class PKIDoc(TypedDict, total=False):
    """``pki``: containers/image's sigstoreSigned PKI mode."""

    caRoots: Required[str]
    caIntermediates: str
    subjectEmail: str
    subjectHostname: str


class SignedIdentityDoc(TypedDict, total=False):
    """``signedIdentity``: containers/image's object (containers-policy.json(5))."""

    type: Required[str]
    dockerReference: str
    dockerRepository: str
    prefix: str
    signedPrefix: str


class SignatureDoc(TypedDict, total=False):
    """One ``signatures`` entry: exactly one of key, keyData, keyless, pki."""

    key: str
    keyData: str
    keyless: KeylessDoc
    pki: PKIDoc
    signedIdentity: SignedIdentityDoc


class AttestationDoc(TypedDict, total=False):
    """One ``attestations`` entry."""

    type: Required[str]
    key: str
    keyData: str
    keyless: KeylessDoc
    builderIds: list[str]


class ImagesDoc(TypedDict, total=False):
    """``spec.baseImages`` (with ``requireDigest``) and ``spec.deploy`` (with
    ``securityProfile``): the schema says which section has which."""

    allowedRepositories: list[str]
    requireDigest: bool
    signatures: list[SignatureDoc]
    attestations: list[AttestationDoc]
    securityProfile: ProfileName


class ExecutorDoc(TypedDict, total=False):
    """``spec.executor``."""

    image: str
    signatures: list[SignatureDoc]


class DockerfileDoc(TypedDict, total=False):
    """``spec.dockerfile``: rule id -> deny | warn | off."""

    rules: dict[str, str]


class BuildDoc(TypedDict, total=False):
    """``spec.build``."""

    securityProfile: ProfileName  # the schema's enums
    seccompProfile: str
    network: StepNetwork


class OutputDoc(TypedDict, total=False):
    """``spec.output``."""

    sign: bool
    attestations: list[str]


class SpecDoc(TypedDict, total=False):
    """``spec``."""

    baseImages: ImagesDoc
    executor: ExecutorDoc
    dockerfile: DockerfileDoc
    build: BuildDoc
    output: OutputDoc
    deploy: ImagesDoc


class MetadataDoc(TypedDict, total=False):
    """``metadata``."""

    name: str
    description: str
    labels: dict[str, str]


class PolicyDocument(TypedDict, total=False):
    """A policy file (``apiVersion trustbuild.dev/v1alpha1``, ``kind Policy``)."""

    apiVersion: Required[str]
    kind: Required[str]
    metadata: MetadataDoc
    spec: Required[SpecDoc]
