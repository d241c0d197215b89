"""Attestations: in-toto Statement v1 in DSSE envelopes, SLSA provenance v1, SBOMs.

Modules: :mod:`~trustbuild.attest.dsse` (PAE, envelopes), :mod:`~trustbuild.attest.statement`
(statements, cosign's predicate short names), :mod:`~trustbuild.attest.provenance` (SLSA v1 from a
BuildRecord), :mod:`~trustbuild.attest.sbom` and :mod:`~trustbuild.attest.packages` (SPDX 2.3 /
CycloneDX 1.5 of a rootfs), :mod:`~trustbuild.attest.attach` (attach as cosign does),
:mod:`~trustbuild.attest.envelopes` (download / attach envelopes made elsewhere),
:mod:`~trustbuild.attest.verify` (verdicts), :mod:`~trustbuild.attest.redact` (secret names).

Example::

    from trustbuild.attest.attach import attest_image
    from trustbuild.attest.verify import verify_attestations
    from trustbuild.sign.keys import load_signing_key, load_verifying_key

    attest_image(store, "1.0", key=load_signing_key("cosign.key"), predicate=b"{...}",
                 predicate_type="slsaprovenance", subject_name="registry.example/app")
    result = verify_attestations(store, "1.0", keys=[load_verifying_key("cosign.pub")],
                                 predicate_type="slsaprovenance")
    assert result.ok, result.reason
"""

from __future__ import annotations

from trustbuild._internal.callable_module import make_callable

make_callable(__name__)
