"""``trustbuild unshare [CMD [ARG...]]``: run a command as root of the user namespace a rootless
build uses (the same id maps), as ``buildah unshare`` does; e.g. remove what a killed rootless
build left behind (files owned by subordinate ids). Without a command: ``$SHELL`` (or /bin/sh).
"""

from __future__ import annotations

import argparse
import os

from trustbuild.errors import UsageError

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``unshare`` command."""
    p = sub.add_parser(
        "unshare", help="run a command in a rootless build's user namespace",
        description="Run CMD as root of a new user namespace with the id maps a rootless build "
                    "uses (/etc/subuid and /etc/subgid ranges through newuidmap/newgidmap, else "
                    "only 0 mapped to you); exit with its code. For users other than root.")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD [ARG...]",
                   help="command to run (default: $SHELL, else /bin/sh)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command in the namespace; its exit code."""
    from trustbuild.sandbox import userns

    if not userns.needed():
        raise UsageError("trustbuild unshare is for users other than root (root needs no "
                         "user namespace)")
    cmd = list(args.cmd)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    return userns.run_in_user_namespace(cmd or [os.environ.get("SHELL") or "/bin/sh"])
