"""trustbuild: a daemonless container image builder with signing, provenance and a policy gate.

The public API (see docs/api.md) is importable from here; it loads on first use, so
``import trustbuild`` stays cheap for the CLI::

    import trustbuild
    built = trustbuild.build("app/", oci_layout_path="out", destinations=["example.org/app:1"])
    trustbuild.sign("oci:out", "cosign.key", docker_reference="example.org/app")
    assert trustbuild.verify("oci:out", key="cosign.pub").ok
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the RUN helper)

__version__ = "0.1.0"
__all__ = ["__version__", "BuildResult", "build", "sign", "verify", "attest",
           "verify_attestation"]

if TYPE_CHECKING:
    from trustbuild.api import BuildResult, attest, build, sign, verify, verify_attestation


def __getattr__(name: str) -> object:
    if name in ("sign", "attest"):  # packages that are also callable as the API function
        import importlib

        return importlib.import_module(f"trustbuild.{name}")
    if name in __all__:
        from trustbuild import api

        return getattr(api, name)
    raise AttributeError(f"module 'trustbuild' has no attribute {name!r}")
