"""Find installed packages in a root filesystem: dpkg, apk, Python dist-info/egg-info, npm.

The walk never follows a symlink and never reads outside ``root``; every database file is read
only if it is a regular file inside the root, bounded in size. Example::

    pkgs = scan_rootfs(Path("/tmp/rootfs"))   # sorted, de-duplicated by purl
    [p.purl for p in pkgs]                    # ["pkg:deb/debian/bash@5.2-15?arch=amd64", ...]
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from urllib.parse import quote

from trustbuild._internal.jsonload import load_object

__all__ = ["Package", "scan_rootfs", "MAX_DB_BYTES"]

MAX_DB_BYTES = 64 * 1024 * 1024
_MAX_META_BYTES = 4 * 1024 * 1024
_SKIP_TOP = {"proc", "sys", "dev"}


@dataclass
class Package:
    """One installed package as found in the filesystem."""

    type: str  # deb | apk | pypi | npm
    name: str
    version: str
    purl: str
    license: str = ""
    arch: str = ""
    locations: list[str] = field(default_factory=list)  # absolute paths inside the rootfs

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """Deterministic ordering."""
        return (self.type, self.name, self.version, self.purl)


def _q(text: str) -> str:
    return quote(text, safe="")


def _read_inside(root: Path, rel: str, *, limit: int = MAX_DB_BYTES) -> bytes | None:
    """Bytes of ``root/rel`` if every component is a real directory and the file is regular."""
    cur = root
    parts = [p for p in rel.split("/") if p]
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except OSError:
            return None
        last = i == len(parts) - 1
        if (last and not stat.S_ISREG(st.st_mode)) or (not last and not stat.S_ISDIR(st.st_mode)):
            return None
    with open(cur, "rb") as f:
        data = f.read(limit + 1)
    return data[:limit] if len(data) <= limit else None


def _os_release_id(root: Path) -> str:
    for rel in ("etc/os-release", "usr/lib/os-release"):
        data = _read_inside(root, rel, limit=64 * 1024)
        if data:
            for line in data.decode("utf-8", "replace").splitlines():
                if line.startswith("ID="):
                    return line[3:].strip().strip('"\'').lower() or ""
    return ""


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas (dpkg status); continuation lines are kept joined."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, ""
        elif line[0] in " \t" and last:
            cur[last] += "\n" + line.strip()
        elif ":" in line:
            k, _, v = line.partition(":")
            last = k.strip()
            cur[last] = v.strip()
    if cur:
        out.append(cur)
    return out


def _dpkg(root: Path, distro: str) -> list[Package]:
    texts: list[tuple[str, bytes]] = []
    data = _read_inside(root, "var/lib/dpkg/status")
    if data:
        texts.append(("/var/lib/dpkg/status", data))
    sd = root / "var/lib/dpkg/status.d"  # distroless images: one file per package
    if sd.is_dir() and not sd.is_symlink():
        for entry in sorted(os.listdir(sd)):
            d = _read_inside(root, f"var/lib/dpkg/status.d/{entry}")
            if d:
                texts.append((f"/var/lib/dpkg/status.d/{entry}", d))
    ns = distro if distro in ("debian", "ubuntu") else "debian"
    out = []
    for loc, raw in texts:
        for p in _paragraphs(raw.decode("utf-8", "replace")):
            name, ver = p.get("Package", ""), p.get("Version", "")
            status = p.get("Status", "install ok installed")
            if not name or not ver or not status.endswith(" installed"):
                continue
            arch = p.get("Architecture", "")
            purl = f"pkg:deb/{ns}/{_q(name)}@{_q(ver)}" + (f"?arch={_q(arch)}" if arch else "")
            out.append(Package("deb", name, ver, purl, "", arch, [loc]))
    return out


def _apk(root: Path, distro: str) -> list[Package]:
    data = _read_inside(root, "lib/apk/db/installed")
    if not data:
        return []
    ns = distro if distro and distro not in ("debian", "ubuntu") else "alpine"
    out = []
    for stanza in re.split(r"\n\s*\n", data.decode("utf-8", "replace")):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if len(line) > 2 and line[1] == ":" and line[0] not in fields:
                fields[line[0]] = line[2:].strip()
        name, ver = fields.get("P", ""), fields.get("V", "")
        if not name or not ver:
            continue
        arch = fields.get("A", "")
        purl = f"pkg:apk/{_q(ns)}/{_q(name)}@{_q(ver)}" + (f"?arch={_q(arch)}" if arch else "")
        out.append(Package("apk", name, ver, purl, fields.get("L", ""), arch,
                           ["/lib/apk/db/installed"]))
    return out


def _pypi_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python(root: Path, rel_file: str) -> Package | None:
    data = _read_inside(root, rel_file, limit=_MAX_META_BYTES)
    if not data:
        return None
    msg = HeaderParser().parsestr(data.decode("utf-8", "replace"))
    name, ver = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
    if not name or not ver:
        return None
    lic = (msg.get("License-Expression") or msg.get("License") or "").strip()
    if lic.upper() == "UNKNOWN" or "\n" in lic:
        lic = ""
    purl = f"pkg:pypi/{_q(_pypi_name(name))}@{_q(ver)}"
    return Package("pypi", _pypi_name(name), ver, purl, lic, "", ["/" + rel_file])


def _npm(root: Path, rel_file: str) -> Package | None:
    data = _read_inside(root, rel_file, limit=_MAX_META_BYTES)
    if not data:
        return None
    try:
        meta: dict[str, object] = load_object(data, what=rel_file, error=ValueError,
                                              max_bytes=_MAX_META_BYTES)
    except ValueError:  # not a package.json we can read: not a package
        return None
    name, ver = meta.get("name"), meta.get("version")
    if not isinstance(name, str) or not isinstance(ver, str) or not name or not ver:
        return None
    lic = meta.get("license")
    lic = lic if isinstance(lic, str) else (lic.get("type", "") if isinstance(lic, dict) else "")
    if name.startswith("@") and "/" in name:
        scope, _, base = name.partition("/")
        purl = f"pkg:npm/{_q(scope)}/{_q(base)}@{_q(ver)}"
    else:
        purl = f"pkg:npm/{_q(name)}@{_q(ver)}"
    return Package("npm", name, ver, purl, str(lic), "", ["/" + rel_file])


def _is_npm_manifest(parts: list[str]) -> bool:
    """``.../node_modules/NAME/package.json`` or ``.../node_modules/@SCOPE/NAME/package.json``."""
    if len(parts) >= 2 and parts[-2] == "node_modules":
        return not parts[-1].startswith("@")
    return len(parts) >= 3 and parts[-3] == "node_modules" and parts[-2].startswith("@")


def _walk(root: Path) -> list[Package]:
    out: list[Package] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        if not rel_dir:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_TOP]
        dirnames.sort()
        parts = rel_dir.split("/") if rel_dir else []
        base = parts[-1] if parts else ""
        if base.endswith(".dist-info") and "METADATA" in filenames:
            pkg = _python(root, f"{rel_dir}/METADATA")
            if pkg:
                out.append(pkg)
        elif base.endswith(".egg-info") and "PKG-INFO" in filenames:
            pkg = _python(root, f"{rel_dir}/PKG-INFO")
            if pkg:
                out.append(pkg)
        for fn in filenames:
            if fn.endswith(".egg-info") and ("site-packages" in parts or "dist-packages" in parts):
                pkg = _python(root, f"{rel_dir}/{fn}" if rel_dir else fn)
                if pkg:
                    out.append(pkg)
        if "package.json" in filenames and _is_npm_manifest(parts):
            pkg = _npm(root, f"{rel_dir}/package.json")
            if pkg:
                out.append(pkg)
    return out


def scan_rootfs(root: Path) -> list[Package]:
    """Every package found under ``root``, sorted, one entry per purl (locations merged)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    distro = _os_release_id(root)
    found = _dpkg(root, distro) + _apk(root, distro) + _walk(root)
    by_purl: dict[str, Package] = {}
    for p in found:
        if p.purl in by_purl:
            by_purl[p.purl].locations.extend(p.locations)
        else:
            by_purl[p.purl] = p
    for p in by_purl.values():
        p.locations = sorted(set(p.locations))
    return sorted(by_purl.values(), key=lambda p: p.sort_key)
