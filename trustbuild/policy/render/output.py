"""Deterministic YAML for rendered manifests: multi-document text or one file per kind.

A manifest with render warnings (what it does not enforce of the policy) gets them as ``#``
comment lines between its ``---`` and its first field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from trustbuild.policy.render.manifest import Manifest, warnings_of

__all__ = ["dump_yaml", "dump_document", "write_dir", "file_name_for"]


class _Dumper(yaml.SafeDumper):
    """SafeDumper: multi-line strings (PEM keys, profiles) as literal blocks, no anchors."""

    def ignore_aliases(self, data: object) -> bool:
        """Never write ``&id001`` anchors: every manifest stands alone."""
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def _dump_one(doc: Manifest) -> str:
    notes = "".join(f"# WARNING (trustbuild policy render): {w}\n" for w in warnings_of(doc))
    return "---\n" + notes + dump_document(doc)


def dump_document(doc: object) -> str:
    """One document without the ``---`` marker (file contents, e.g. a policy in a ConfigMap)."""
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         width=4096, allow_unicode=True))


def dump_yaml(docs: Sequence[Manifest]) -> str:
    """All documents as one multi-document YAML stream (``---`` before each)."""
    return "".join(_dump_one(d) for d in docs)


#: Apply order (``kubectl apply -f DIR`` goes by file name): namespaces before what lives in
#: them, a TrustRoot before the ClusterImagePolicy naming it, the webhook server before the
#: configuration that sends requests to it.
_ORDER = {"Namespace": 0, "ConfigMap": 10, "Service": 20, "Deployment": 30, "Job": 40,
          "TrustRoot": 45, "ClusterPolicy": 50, "ClusterImagePolicy": 50,
          "ValidatingAdmissionPolicy": 60, "ValidatingAdmissionPolicyBinding": 61,
          "ValidatingWebhookConfiguration": 90}


def file_name_for(kind: str) -> str:
    """The file a kind is written to: ``ClusterPolicy`` -> ``50-clusterpolicy.yaml``."""
    return f"{_ORDER.get(kind, 80):02d}-{kind.lower()}.yaml"


def write_dir(docs: Sequence[Manifest], output_dir: str | Path) -> list[Path]:
    """Write one file per kind (documents of that kind in render order); returns the paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[Manifest]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    written = []
    for kind, group in by_kind.items():
        path = out / file_name_for(kind)
        path.write_text(dump_yaml(group))
        written.append(path)
    return written
