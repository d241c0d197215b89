"""trustbuild: a daemonless container image builder with signing, provenance and a policy gate.

Example::

    from trustbuild.oci.reference import Reference
    ref = Reference.parse("alpine")
    assert str(ref) == "docker.io/library/alpine:latest"
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
