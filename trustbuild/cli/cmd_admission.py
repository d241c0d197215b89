"""``trustbuild admission serve``: the validating webhook applying a policy's ``spec.deploy``."""

from __future__ import annotations

import argparse
import sys

from trustbuild.cli.common import add_registry_flags, print_usage, store_options

__all__ = ["register", "run_serve"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``admission`` with its ``serve`` subcommand."""
    p = sub.add_parser("admission", help="Kubernetes validating admission webhook")
    asub = p.add_subparsers(dest="admission_command", metavar="SUBCOMMAND")
    s = asub.add_parser(
        "serve", help="serve AdmissionReviews over HTTPS, denying images the policy rejects",
        description="Answer AdmissionReview v1 requests for Pods and workload templates: every "
                    "image is resolved to a digest once and must pass the policy's spec.deploy "
                    "(allowed repositories, signatures, attestations). Fails closed.")
    s.add_argument("--policy", required=True, metavar="FILE", help="policy file (spec.deploy)")
    s.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8443; port 0 picks one)")
    s.add_argument("--tls-cert", required=True, metavar="PEM", help="serving certificate chain")
    s.add_argument("--tls-key", required=True, metavar="PEM", help="serving private key")
    s.add_argument("--path", default="/validate", help="URL path of the webhook (default "
                                                       "/validate)")
    s.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="TLS handshake and read timeout per connection (default 10)")
    s.add_argument("--max-concurrent", type=int, default=16, metavar="N",
                   help="reviews evaluated at once; more wait for a turn (default 16)")
    s.add_argument("--queue-wait", type=float, default=5.0, metavar="SECONDS",
                   help="how long a review waits for a turn before 503; keep it below the "
                        "webhook's timeoutSeconds (default 5: half the API server's default "
                        "10 s)")
    s.add_argument("--max-connections", type=int, default=1024, metavar="N",
                   help="open connections at most; more are closed at once (default 1024)")
    s.add_argument("--idle-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="keep an idle connection open this long for the next review "
                        "(default 120, above the API server's 90 s idle timeout)")
    s.add_argument("--cache-ttl", type=float, default=60.0, metavar="SECONDS",
                   help="remember images (by digest) that passed for this long; 0 turns it "
                        "off (default 60; denials are never cached)")
    s.add_argument("-v", "--verbose", action="count", default=0, help="tracebacks on errors")
    add_registry_flags(s)
    s.set_defaults(func=run_serve)
    p.set_defaults(func=print_usage(p))


def run_serve(args: argparse.Namespace) -> int:
    """Load the policy, bind, print the URL on stderr, serve until interrupted."""
    from trustbuild.admission.controller import AdmissionController
    from trustbuild.admission.server import AdmissionServer, parse_listen
    from trustbuild.errors import UsageError
    from trustbuild.policy.model import load_policy

    if (args.max_concurrent < 1 or args.max_connections < 1 or args.timeout <= 0
            or args.idle_timeout <= 0 or args.cache_ttl < 0 or args.queue_wait < 0):
        raise UsageError("--max-concurrent, --max-connections, --timeout and --idle-timeout "
                         "must be positive, --cache-ttl and --queue-wait >= 0")
    policy = load_policy(args.policy)
    host, port = parse_listen(args.listen)
    controller = AdmissionController(policy, store_options(args), cache_ttl=args.cache_ttl)
    try:
        server = AdmissionServer(controller, (host, port), cert=args.tls_cert, key=args.tls_key,
                                 path=args.path, timeout=args.timeout,
                                 max_concurrent=args.max_concurrent,
                                 max_connections=args.max_connections,
                                 queue_wait=args.queue_wait, idle_timeout=args.idle_timeout)
    except OSError as exc:
        raise UsageError(f"--listen {args.listen}: cannot bind: {exc.strerror}") from None
    shown = f"[{host}]" if ":" in host else host
    print(f"trustbuild admission: policy {policy.name} ({policy.digest}) listening on "
          f"https://{shown}:{server.port}{args.path}", file=sys.stderr, flush=True)
    import signal

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        controller.close()
    return 0
