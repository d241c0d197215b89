"""The RUN sandbox probe's answer, remembered in the layer store (``--cache-dir``).

``--mode auto`` runs a probe step through the real sandbox before every build (about 0.1 s: a
helper process, namespaces, pivot_root, seccomp). With a layer store the answer is kept under
``probes/<key>.json``, where the key covers everything the answer depends on: the trustbuild
version, the boot (``/proc/sys/kernel/random/boot_id``), the builder's user, user/mount/pid
namespaces and capabilities, the no_new_privs and seccomp state it runs under, the user
namespace limit, the security profile and the seccomp profile's content. Another container,
another boot, other privileges or another profile probe again.

Example::

    answer = remembered(store_root, options)      # (ok, why) or None
    if answer is None:
        answer = sandbox_works(options, scratch)
        remember(store_root, options, answer)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild import __version__

if TYPE_CHECKING:
    from trustbuild.builder.options import BuildOptions

__all__ = ["probe_key", "remembered", "remember"]

_STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode(errors="replace")
    except OSError:
        return ""


def probe_key(options: BuildOptions) -> str:
    """sha256 over what the probe's answer depends on (see the module docstring)."""
    status = [line for line in _read("/proc/self/status").splitlines()
              if line.split(":", 1)[0] in _STATUS_FIELDS]
    ns = []
    for name in ("user", "mnt", "pid"):
        try:
            ns.append(os.readlink(f"/proc/self/ns/{name}"))
        except OSError:
            ns.append("")
    seccomp = options.seccomp_profile or ""
    profile = _read(seccomp) if seccomp and "/" in seccomp else ""
    parts = [__version__, _read("/proc/sys/kernel/random/boot_id").strip(),
             f"{os.getuid()}:{os.geteuid()}:{os.getgid()}", *ns, *status,
             _read("/proc/sys/user/max_user_namespaces").strip(),
             str(options.security_profile), seccomp, hashlib.sha256(profile.encode()).hexdigest()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _path(root: Path | str, options: BuildOptions) -> Path:
    return Path(root) / "probes" / f"{probe_key(options)}.json"


def remembered(root: Path | str, options: BuildOptions) -> tuple[bool, str] | None:
    """The stored answer for this environment, or None."""
    try:
        doc = json.loads(_path(root, options).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        return None
    return doc["ok"], str(doc.get("why", ""))


def remember(root: Path | str, options: BuildOptions, answer: tuple[bool, str]) -> None:
    """Store ``answer`` (temporary file + rename; a failure to write is ignored)."""
    path = _path(root, options)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        tmp.write_text(json.dumps({"ok": answer[0], "why": answer[1]}))
        os.replace(tmp, path)
