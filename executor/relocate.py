"""Make the executor's runtime self-contained under one prefix (run in executor/Dockerfile).

In ``--mode container`` trustbuild deletes "/" except its ignore list and unpacks the base image
there, so nothing the executor runs may live in Debian's /usr or /lib. This script, run with
the Debian rootfs' own ``python3`` in a RUN step of the executor image, copies into ``PREFIX``:

- ``bin/python3.X`` and its stdlib (``lib/python3.X``, with ``lib-dynload``);
- ``bin/git``, ``libexec/git-core`` and ``share/git-core/templates`` (git contexts);
- ``bin/docker-credential-ecr-login`` (the ECR credential helper);
- ``etc/ssl/certs/ca-certificates.crt`` (Debian's CA bundle);
- ``lib/``: the dynamic loader and every shared library those programs load (``ldd``), plus
  ``libseccomp.so.2`` (opened with ctypes by pyseccomp).

``patchelf`` points every executable at ``PREFIX/lib/ld-linux*`` with ``PREFIX/lib`` as its
``DT_RPATH``, so the loader takes every library from the prefix; shared objects that carry a
``DT_RUNPATH`` (manylinux wheels) get ``PREFIX/lib`` appended to it. ``closure`` repeats the
library collection for ELF files added later under a directory (the venv's site-packages).

Usage: ``relocate.py runtime PREFIX`` then, after ``pip install``, ``relocate.py closure
PREFIX DIR...`` (the same PREFIX; DIR: the venv's ``lib``). Debian paths are fixed: this is
for the debootstrapped executor base.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
GIT_CORE = Path("/usr/lib/git-core")
EXTRA_LIBS = ("libseccomp.so.2",)
PROGRAMS = ("/usr/bin/git", "/usr/bin/docker-credential-ecr-login")


def is_elf(p: Path) -> bool:
    if p.is_symlink() or not p.is_file():
        return False
    with open(p, "rb") as f:
        return f.read(4) == ELF_MAGIC


def patchelf(*args: str) -> str:
    return subprocess.run(["patchelf", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def interpreter(p: Path) -> str | None:
    r = subprocess.run(["patchelf", "--print-interpreter", str(p)], capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def ldd(paths: list[Path]) -> set[Path]:
    """Every library ``ldd`` resolves for ``paths`` (the loader included)."""
    out: set[Path] = set()
    for i in range(0, len(paths), 100):
        r = subprocess.run(["ldd", *map(str, paths[i:i + 100])], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                j = parts.index("=>")
                if len(parts) > j + 1 and parts[j + 1].startswith("/"):
                    out.add(Path(parts[j + 1]))
            elif parts and parts[0].startswith("/") and not line.endswith(":"):
                out.add(Path(parts[0]))
            if "not found" in line:
                sys.exit(f"relocate: {line.strip()} (in {' '.join(map(str, paths[i:i + 100]))})")
    return out


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` keeping hard links as hard links (git-core is mostly links to git)."""
    seen: dict[tuple[int, int], Path] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            s, d = Path(dirpath) / name, dst / rel / name
            st = s.lstat()
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
            elif (st.st_dev, st.st_ino) in seen:
                os.link(seen[(st.st_dev, st.st_ino)], d)
            else:
                shutil.copy2(s, d)
                seen[(st.st_dev, st.st_ino)] = d


def elf_files(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        for dirpath, _, filenames in os.walk(root):
            found += [p for p in (Path(dirpath) / n for n in filenames) if is_elf(p)]
    return sorted(found)


def closure(prefix: Path, roots: list[Path]) -> None:
    """Copy the libraries of every ELF file under ``roots`` into PREFIX/lib; patch them all."""
    lib = prefix / "lib"
    files = elf_files(*roots)
    libs = ldd(files)
    for src in sorted(libs):
        dst = lib / src.name
        if not dst.exists() and not str(src).startswith(str(lib) + "/"):
            shutil.copy2(src.resolve(), dst)
    loader = sorted(lib.glob("ld-linux*.so*"))
    if not loader:
        sys.exit(f"relocate: no dynamic loader in {lib}")
    done: set[tuple[int, int]] = set()
    for f in files:
        st = f.stat()
        if (st.st_dev, st.st_ino) in done:  # a hard link of a file already patched
            continue
        done.add((st.st_dev, st.st_ino))
        if not st.st_mode & 0o200:
            f.chmod(st.st_mode | 0o200)
        if ".so" not in f.name and interpreter(f):  # an executable (libc.so.6 has one too)
            patchelf("--set-interpreter", str(loader[0]), "--force-rpath", "--set-rpath",
                     str(lib), str(f))
        elif ".so" in f.name:
            r = subprocess.run(["patchelf", "--print-rpath", str(f)], capture_output=True,
                               text=True)
            runpath = r.stdout.strip() if r.returncode == 0 else ""
            if runpath and str(lib) not in runpath.split(":"):
                patchelf("--set-rpath", f"{runpath}:{lib}", str(f))
        if not st.st_mode & 0o200:
            f.chmod(st.st_mode)


def runtime(prefix: Path) -> None:
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (prefix / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(sys.executable), prefix / "bin" / ver)
    os.symlink(ver, prefix / "bin" / "python3")
    copy_tree(stdlib, prefix / "lib" / ver)
    for prog in PROGRAMS:
        shutil.copy2(prog, prefix / "bin" / Path(prog).name)
    copy_tree(GIT_CORE, prefix / "libexec" / "git-core")
    copy_tree(Path("/usr/share/git-core/templates"), prefix / "share" / "git-core" / "templates")
    certs = prefix / "etc" / "ssl" / "certs"
    certs.mkdir(parents=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", certs / "ca-certificates.crt")
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for name in EXTRA_LIBS:
        src = Path("/usr/lib", multiarch, name)
        shutil.copy2(src.resolve(), prefix / "lib" / name)
    closure(prefix, [prefix / "bin", prefix / "libexec", prefix / "lib"])


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "runtime":
        runtime(Path(argv[1]))
    elif len(argv) >= 3 and argv[0] == "closure":
        if not list(Path(argv[1], "lib").glob("ld-linux*.so*")):
            sys.exit(f"relocate: {argv[1]} is not a runtime made by `relocate.py runtime`")
        closure(Path(argv[1]), [Path(a) for a in argv[2:]])
    else:
        print("usage: relocate.py runtime PREFIX | relocate.py closure PREFIX DIR...",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
