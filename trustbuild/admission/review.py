"""AdmissionReview v1: parse a request (hostile input), find its images, build the answer.

The API server sends ``{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
"request": {...}}``; the answer echoes ``request.uid`` with ``allowed`` and, on denial, a
``status`` whose ``message`` the user sees from ``kubectl``.

Example::

    req = parse_review(body)
    uses = extract_images(req)
    answer = response(req.uid, allowed=False, message="image x: unsigned")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypeAlias, TypedDict

from trustbuild._internal.jsonload import load_object
from trustbuild.errors import TrustbuildError

__all__ = [
    "InvalidReview", "AdmissionRequest", "ImageUse", "parse_review", "extract_images",
    "response", "ReviewAnswer", "ReviewResponse", "ReviewStatus", "MAX_REVIEW_BYTES",
    "API_VERSION",
]

API_VERSION = "admission.k8s.io/v1"
#: The API server limits a request body to 3 MiB; a review wraps object and oldObject.
MAX_REVIEW_BYTES = 7 * 1024 * 1024
MAX_IMAGES = 1024
MAX_IMAGE_LEN = 4096

#: kind -> path of its pod spec, for the workload kinds whose templates are checked.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

#: A Kubernetes object from a review, as decoded JSON (hostile: narrowed with isinstance).
KubeObject: TypeAlias = dict[str, object]


class ReviewStatus(TypedDict):
    """``response.status`` (a ``metav1.Status``): what ``kubectl`` shows on denial."""

    code: int
    message: str
    reason: NotRequired[str]


class ReviewResponse(TypedDict):
    """``response`` of an AdmissionReview v1."""

    uid: str
    allowed: bool
    status: NotRequired[ReviewStatus]
    warnings: NotRequired[list[str]]


class ReviewAnswer(TypedDict):
    """The AdmissionReview v1 the webhook answers with."""

    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: ReviewResponse


class InvalidReview(TrustbuildError):
    """The body is not a well-formed AdmissionReview v1 request (the message says where)."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The fields of ``request`` the webhook uses."""

    uid: str
    kind: str
    group: str
    operation: str
    namespace: str
    name: str
    object: KubeObject | None = field(repr=False, default=None)
    old_object: KubeObject | None = field(repr=False, default=None)


@dataclass(frozen=True)
class ImageUse:
    """One container image and where it is (``spec.template.spec.containers[0]``)."""

    image: str
    where: str


def _str_field(d: dict[str, object], key: str, where: str, *, required: bool = True) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        raise InvalidReview(f"{where}.{key}: expected a string, got {type(v).__name__}")
    if len(v) > 253 * 2:
        raise InvalidReview(f"{where}.{key}: longer than {253 * 2} characters")
    return v


def parse_review(body: bytes) -> AdmissionRequest:
    """Parse and check an AdmissionReview v1 request body; InvalidReview says what is wrong."""
    doc = load_object(body, what="AdmissionReview", error=InvalidReview,
                      max_bytes=MAX_REVIEW_BYTES)
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        raise InvalidReview(f"expected apiVersion {API_VERSION} kind AdmissionReview, got "
                            f"{str(doc.get('apiVersion'))[:64]!r} {str(doc.get('kind'))[:64]!r}")
    req = doc.get("request")
    if not isinstance(req, dict):
        raise InvalidReview("AdmissionReview.request: expected an object")
    uid = _str_field(req, "uid", "request")
    if not uid or len(uid) > 128:
        raise InvalidReview("request.uid: expected a non-empty string of at most 128 characters")
    kind = req.get("kind")
    if not isinstance(kind, dict):
        raise InvalidReview("request.kind: expected an object {group, version, kind}")
    operation = _str_field(req, "operation", "request")
    obj = req.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise InvalidReview("request.object: expected an object")
    old = req.get("oldObject")
    if old is not None and not isinstance(old, dict):
        raise InvalidReview("request.oldObject: expected an object")
    return AdmissionRequest(
        uid=uid,
        kind=_str_field(kind, "kind", "request.kind"),
        group=_str_field(kind, "group", "request.kind", required=False),
        operation=operation,
        namespace=_str_field(req, "namespace", "request", required=False),
        name=_str_field(req, "name", "request", required=False),
        object=obj,
        old_object=old,
    )


def extract_images(req: AdmissionRequest, *, old: bool = False) -> list[ImageUse]:
    """Every container image of the Pod or pod template in ``req.object`` (``oldObject`` with
    ``old``), in spec order.

    Kinds without a pod spec give an empty list. A malformed container list raises
    InvalidReview naming the field.
    """
    path = POD_SPEC_PATHS.get(req.kind)
    obj = req.old_object if old else req.object
    if path is None or obj is None:
        return []
    node: object = obj
    where = ""
    for key in path:
        if not isinstance(node, dict):
            raise InvalidReview(f"object{where}: expected an object")
        node = node.get(key)
        where += f".{key}"
        if node is None:
            raise InvalidReview(f"object{where}: missing")
    if not isinstance(node, dict):
        raise InvalidReview(f"object{where}: expected an object")
    out: list[ImageUse] = []
    for lst in _CONTAINER_LISTS:
        items = node.get(lst)
        if items is None:
            continue
        if not isinstance(items, list):
            raise InvalidReview(f"object{where}.{lst}: expected a list")
        for i, c in enumerate(items):
            at = f"{where.lstrip('.')}.{lst}[{i}]"
            if not isinstance(c, dict):
                raise InvalidReview(f"object.{at}: expected an object")
            image = c.get("image")
            if not isinstance(image, str) or not image:
                raise InvalidReview(f"object.{at}.image: expected a non-empty string")
            if len(image) > MAX_IMAGE_LEN:
                raise InvalidReview(f"object.{at}.image: longer than {MAX_IMAGE_LEN} characters")
            out.append(ImageUse(image, at))
            if len(out) > MAX_IMAGES:
                raise InvalidReview(f"object: more than {MAX_IMAGES} containers")
    return out


def response(uid: str, *, allowed: bool, message: str = "", code: int | None = None,
             warnings: list[str] | None = None) -> ReviewAnswer:
    """An AdmissionReview v1 response for ``uid``."""
    resp: ReviewResponse = {"uid": uid, "allowed": allowed}
    if not allowed or message:
        status: ReviewStatus = {"code": code or (200 if allowed else 403),
                                "message": message[:4096]}
        if not allowed:
            status["reason"] = "Forbidden" if (code or 403) == 403 else "BadRequest"
        resp["status"] = status
    if warnings:
        resp["warnings"] = [w[:256] for w in warnings[:16]]
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": resp}
