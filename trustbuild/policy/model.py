"""The policy file: load YAML, validate against the shipped JSON Schema, give typed access.

Example::

    from trustbuild.policy.model import load_policy
    policy = load_policy("policies/baseline.yaml")
    print(policy.build.security_profile)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from trustbuild._internal.data import find_data, shipped_names
from trustbuild.errors import PolicyError
from trustbuild.oci.digest import Digest
from trustbuild.policy.document import (
    BuildDoc,
    ExecutorDoc,
    ImagesDoc,
    OutputDoc,
    PKIDoc,
    PolicyDocument,
    SignatureDoc,
)
from trustbuild.sandbox.spec import ProfileName, StepNetwork
from trustbuild.sign.identity import SignedIdentity

if TYPE_CHECKING:  # jsonschema, yaml and cryptography load only when a policy is parsed
    import jsonschema

    from trustbuild.sign.pki import PKIPolicy

__all__ = [
    "Policy",
    "SignatureRule",
    "AttestationRule",
    "KeylessIdentity",
    "anchor_regexp",
    "load_policy",
    "parse_policy",
    "repository_matches",
    "schema",
]

MAX_POLICY_BYTES = 1024 * 1024


@cache
def schema() -> dict[str, object]:
    """The policy JSON Schema shipped in the package."""
    text = resources.files("trustbuild.policy").joinpath("schema.json").read_text()
    doc: dict[str, object] = json.loads(text)
    return doc


@dataclass(frozen=True)
class KeylessIdentity:
    """Who must have signed, for keyless (Fulcio certificate) signatures.

    A loaded policy always has an issuer (or issuer regexp) and a subject (or subject regexp);
    the regexps are stored anchored (:func:`anchor_regexp`).
    """

    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None
    trusted_root: str | None = None  # path to a Sigstore trusted_root.json (offline verification)

    def python_regexps(self) -> tuple[str | None, str | None]:
        """(issuer, subject) regexps for ``re.search`` that match only the whole value."""
        return _fullmatch_form(self.issuer_regexp), _fullmatch_form(self.subject_regexp)


@dataclass(frozen=True)
class SignatureRule:
    """One acceptable signer: a public key (PEM bytes) or a keyless identity."""

    key_pem: bytes | None = None
    key_source: str = ""  # the file or "keyData", for messages
    keyless: KeylessIdentity | None = None
    signed_identity: SignedIdentity | None = None  # None: matchRepository (cosign)
    pki: PKIPolicy | None = None  # containers/image sigstoreSigned pki


@dataclass(frozen=True)
class AttestationRule:
    """An attestation that must be present and signed by ``signer``."""

    type: str
    signer: SignatureRule | None
    builder_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    """A signature/attestation requirement on a set of images."""

    allowed_repositories: tuple[str, ...] = ()
    require_digest: bool = False
    signatures: tuple[SignatureRule, ...] = ()
    attestations: tuple[AttestationRule, ...] = ()


@dataclass(frozen=True)
class ExecutorSection:
    """Where the executor image must come from and who must have signed it."""

    image: str | None = None
    signatures: tuple[SignatureRule, ...] = ()


@dataclass(frozen=True)
class BuildSection:
    """Sandbox settings the policy imposes."""

    security_profile: ProfileName | None = None
    seccomp_profile: str | None = None
    network: StepNetwork | None = None


@dataclass(frozen=True)
class OutputSection:
    """What the build must produce."""

    sign: bool = False
    attestations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A validated policy file."""

    name: str
    path: str
    digest: str
    base_images: Section
    executor: ExecutorSection
    rules: dict[str, str]
    build: BuildSection
    output: OutputSection
    deploy: Section
    raw: PolicyDocument = field(compare=False)


def load_policy(path: str | Path) -> Policy:
    """Read, validate and resolve a policy file; PolicyError naming the field otherwise.

    A bare name that is not a file here (``baseline``, ``restricted``) names a policy shipped
    with trustbuild (``policies/NAME.yaml`` in the checkout or the installed package data).
    """
    p = Path(path)
    name = str(path)
    if not p.exists() and name and "/" not in name and "." not in name:
        shipped = find_data("policies", f"{name}.yaml")
        if shipped is None:
            known = ", ".join(shipped_names("policies", ".yaml")) or "none found"
            raise PolicyError(f"{name}: no such policy file and no shipped policy of that name "
                              f"(shipped: {known})")
        p = shipped
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read policy file: {exc.strerror}") from None
    return parse_policy(data, path=str(p))


def parse_policy(data: bytes, *, path: str = "policy.yaml") -> Policy:
    """Validate policy bytes; key paths are relative to ``path``'s directory."""
    import yaml

    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: policy file larger than {MAX_POLICY_BYTES} bytes")
    try:
        doc = yaml.safe_load(data)
    except RecursionError:
        raise PolicyError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(f"{path}{where}: invalid YAML: {problem}") from None
    if not isinstance(doc, dict) or not _valid(doc, path):
        raise PolicyError(f"{path}: expected a YAML mapping with apiVersion, kind and spec")
    spec = doc["spec"]
    base_dir = Path(path).parent
    base: ImagesDoc = spec.get("baseImages") or {}
    ex: ExecutorDoc = spec.get("executor") or {}
    build: BuildDoc = spec.get("build") or {}
    out: OutputDoc = spec.get("output") or {}
    dep: ImagesDoc = spec.get("deploy") or {}
    pol = Policy(
        name=str(doc.get("metadata", {}).get("name", Path(path).stem)),
        path=path,
        digest=str(Digest.of(data)),
        base_images=_section(base, base_dir, path, "spec.baseImages"),
        executor=ExecutorSection(
            ex.get("image"),
            _signatures(ex.get("signatures"), base_dir, path, "spec.executor.signatures"),
        ),
        rules=dict(spec.get("dockerfile", {}).get("rules") or {}),
        build=BuildSection(
            build.get("securityProfile"), build.get("seccompProfile"), build.get("network")
        ),
        output=OutputSection(bool(out.get("sign", False)), tuple(out.get("attestations") or ())),
        deploy=_section(dep, base_dir, path, "spec.deploy"),
        raw=doc,
    )
    from trustbuild.policy.rules import RULES  # local import: rules import nothing from here

    for rid in pol.rules:
        if rid not in RULES:
            raise PolicyError(
                f"{path}: spec.dockerfile.rules.{rid}: unknown rule id "
                f"(known: {', '.join(sorted(RULES))})"
            )
    if ex.get("signatures") and not ex.get("image"):
        raise PolicyError(
            f"{path}: spec.executor.image: required when spec.executor.signatures is set"
        )
    return pol


def _valid(doc: dict[str, object], path: str) -> TypeGuard[PolicyDocument]:
    """True when ``doc`` follows schema.json; PolicyError naming the first defect otherwise."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(
        validator.iter_errors(doc),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        raise PolicyError(f"{path}: {_describe(errors[0])}")
    return True


def _describe(err: jsonschema.ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    where = where.lstrip(".") or "(top level)"
    # jsonschema types the schema as possibly Unset; a reported error always has one.
    sub = err.schema if isinstance(err.schema, Mapping) else {}
    props = sub.get("properties")
    known = list(props) if isinstance(props, Mapping) else []
    instance: object = err.instance
    if err.validator == "additionalProperties" and isinstance(instance, dict):
        extra = sorted(set(instance) - set(known))
        return f"{where}: unknown field {extra[0]!r} (allowed: {', '.join(known)})"
    if err.validator == "required":
        return f"{where}: {err.message}"
    if err.validator == "type":
        return (f"{where}: expected {err.validator_value}, "
                f"got {type(instance).__name__} {instance!r}")
    if err.validator in ("enum", "const"):
        value: object = err.validator_value
        choices = value if err.validator == "enum" and isinstance(value, list) else [value]
        return f"{where}: {instance!r} is not one of {', '.join(map(str, choices))}"
    if err.validator == "oneOf":
        return f"{where}: give exactly one of key, keyData, keyless or pki"
    if err.validator == "anyOf":
        alts: object = err.validator_value
        names = [str(n) for alt in (alts if isinstance(alts, list) else [])
                 if isinstance(alt, dict) for n in alt.get("required", ())]
        if "subject" in names:
            return (f"{where}: give subject or subjectRegExp (without an identity any "
                    "workflow or account of the issuer would be trusted)")
        return f"{where}: give {' or '.join(names) or 'one of the alternatives'}"
    return f"{where}: {err.message}"


def _signatures(items: list[SignatureDoc] | None, base_dir: Path, path: str,
                where: str) -> tuple[SignatureRule, ...]:
    out = []
    for i, item in enumerate(items or []):
        out.append(_signer(item, base_dir, path, f"{where}[{i}]"))
    return tuple(out)


def _signer(item: SignatureDoc, base_dir: Path, path: str, where: str) -> SignatureRule:
    rule = _signer_without_identity(item, base_dir, path, where)
    if "signedIdentity" not in item:
        return rule
    from dataclasses import replace

    from trustbuild.errors import UsageError

    try:
        ident = SignedIdentity.from_json(item["signedIdentity"], where=f"{where}.signedIdentity")
    except UsageError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    return replace(rule, signed_identity=ident)


def _signer_without_identity(item: SignatureDoc, base_dir: Path, path: str,
                             where: str) -> SignatureRule:
    if "key" in item:
        kp = Path(item["key"])
        kp = kp if kp.is_absolute() else base_dir / kp
        try:
            pem = kp.read_bytes()
        except OSError as exc:
            raise PolicyError(f"{path}: {where}.key: cannot read {kp}: {exc.strerror}") from None
        _check_pem(pem, path, f"{where}.key ({kp})")
        return SignatureRule(key_pem=pem, key_source=str(kp))
    if "keyData" in item:
        pem = item["keyData"].encode()
        _check_pem(pem, path, f"{where}.keyData")
        return SignatureRule(key_pem=pem, key_source="keyData")
    if "pki" in item:
        return SignatureRule(pki=_pki(item["pki"], base_dir, path, f"{where}.pki"),
                             key_source="pki")
    kl = item["keyless"]
    for rx, value in (("issuerRegExp", kl.get("issuerRegExp")),
                      ("subjectRegExp", kl.get("subjectRegExp"))):
        if value is not None:
            try:
                re.compile(anchor_regexp(value))
            except re.error as exc:
                raise PolicyError(
                    f"{path}: {where}.keyless.{rx}: invalid regular expression: {exc}"
                ) from None
    root = kl.get("trustedRoot")
    if root is not None:
        rp = Path(root) if Path(root).is_absolute() else base_dir / root
        if not rp.is_file():
            raise PolicyError(f"{path}: {where}.keyless.trustedRoot: cannot read {rp}")
        root = str(rp)
    if not (kl.get("subject") or kl.get("subjectRegExp")):  # the schema says so too
        raise PolicyError(f"{path}: {where}.keyless: give subject or subjectRegExp")
    return SignatureRule(
        keyless=KeylessIdentity(
            kl.get("issuer"),
            anchor_regexp(kl["issuerRegExp"]) if "issuerRegExp" in kl else None,
            kl.get("subject"),
            anchor_regexp(kl["subjectRegExp"]) if "subjectRegExp" in kl else None,
            root,
        )
    )


def anchor_regexp(rx: str) -> str:
    """``^(?:rx)$``: a policy regexp must match the whole issuer or subject, never a part.

    The form is valid in Python ``re``, Go RE2 (Kyverno, policy-controller) and CEL, so the
    rendered bundles carry exactly what trustbuild checks. (Python's ``$`` also matches before
    one final newline; :meth:`KeylessIdentity.python_regexps` uses ``\\Z`` in process.)
    """
    return f"^(?:{rx})$"


def _fullmatch_form(rx: str | None) -> str | None:
    """``rx`` matching only a whole value under ``re.search`` (``\\Z``: no final newline)."""
    return None if rx is None else rf"\A(?:{rx})\Z"


def _pki(d: PKIDoc, base_dir: Path, path: str, where: str) -> PKIPolicy:
    from trustbuild.errors import UsageError
    from trustbuild.sign.pki import PKIPolicy

    def rel(p: str | None) -> str | None:
        if p is None:
            return None
        return str(Path(p) if Path(p).is_absolute() else base_dir / p)

    try:
        return PKIPolicy.from_files(rel(d["caRoots"]) or "", ca_intermediates=rel(
            d.get("caIntermediates")), subject_email=d.get("subjectEmail"),
            subject_hostname=d.get("subjectHostname"))
    except UsageError as exc:
        raise PolicyError(f"{path}: {where}: {exc}") from None


def _check_pem(pem: bytes, path: str, where: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"{path}: {where}: not a PEM public key ({exc})") from None


def _section(d: ImagesDoc, base_dir: Path, path: str, where: str) -> Section:
    atts = []
    for i, a in enumerate(d.get("attestations") or []):
        signer = None
        who: SignatureDoc = {}
        if "key" in a:
            who["key"] = a["key"]
        if "keyData" in a:
            who["keyData"] = a["keyData"]
        if "keyless" in a:
            who["keyless"] = a["keyless"]
        if who:
            signer = _signer(who, base_dir, path, f"{where}.attestations[{i}]")
        else:
            raise PolicyError(
                f"{path}: {where}.attestations[{i}]: needs key, keyData or keyless "
                "(who must have signed it)"
            )
        atts.append(AttestationRule(a["type"], signer, tuple(a.get("builderIds") or ())))
    return Section(
        allowed_repositories=tuple(d.get("allowedRepositories") or ()),
        require_digest=bool(d.get("requireDigest", False)),
        signatures=_signatures(d.get("signatures"), base_dir, path, f"{where}.signatures"),
        attestations=tuple(atts),
    )


def repository_matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Glob match on ``host/repo``: ``*`` stays within one path segment, ``**`` crosses them."""
    for pat in patterns:
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        if re.fullmatch(rx, name):
            return True
    return False
