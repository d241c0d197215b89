"""The validating admission webhook: ``spec.deploy`` of a policy applied to AdmissionReviews.

- :mod:`trustbuild.admission.review`: parse an AdmissionReview v1 (hostile input), find every
  image of a Pod or pod template, build the answer;
- :mod:`trustbuild.admission.controller`: resolve each image to a digest once and run
  :func:`trustbuild.policy.deploy.check_deploy` on it;
- :mod:`trustbuild.admission.server`: HTTPS server with size, time and concurrency bounds.

Example::

    from trustbuild.admission.controller import AdmissionController
    from trustbuild.admission.server import AdmissionServer
    from trustbuild.policy.model import load_policy
    from trustbuild.registry.options import StoreOptions

    ctl = AdmissionController(load_policy("policies/restricted.yaml"), StoreOptions())
    AdmissionServer(ctl, ("0.0.0.0", 8443), cert="tls.crt", key="tls.key").serve_forever()
"""

from __future__ import annotations

__all__: list[str] = []
