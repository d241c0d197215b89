"""Build the trustbuild executor image with trustbuild itself (``make executor``).

Steps, all offline except the Debian mirror and the Python package index:

1. A Debian base rootfs made by ``debootstrap --variant=minbase`` with the packages the
   executor needs (python3, python3-venv, ca-certificates, libseccomp2, git and the ECR
   credential helper), from the mirror apt uses on this machine. The tarball is cached
   (``CACHE/debian-SUITE-ARCH-HASH.tar.gz``), so it is made once per machine.
2. That rootfs becomes a base image: ``FROM scratch`` + ``ADD rootfs.tar.gz /``, built by
   trustbuild into a cached OCI layout, then copied (``trustbuild copy``) into a loopback
   registry: ``--base-registry HOST`` or a private ``docker-registry`` started here.
3. The trustbuild wheel (``pip wheel`` of a clean copy of this checkout) and wheels of its
   dependencies for the image's Python (``pip download --only-binary``) go into the context,
   and trustbuild builds ``executor/Dockerfile`` with ``PYTHON_IMAGE=<base>@<digest>``.

Output: an OCI layout (``--oci-layout DIR``, default ``CACHE/executor-layout``, tag ``latest``)
or ``--destination REF`` (pushed). ``--sign-key KEY`` signs it and attaches SLSA provenance and
an SBOM. Prints ``executor: LOCATION@DIGEST`` last. Run as root (debootstrap, RUN sandbox).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "libseccomp2", "git",
            "amazon-ecr-credential-helper", "patchelf")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCE_PARTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "trustbuild",
                "seccomp", "policies")
BASE_REPO = "trustbuild/debian"
# Trimmed from the base: package caches and lists, documentation other than copyright notices.
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/man", "usr/share/info",
         "usr/share/locale", "usr/share/doc")
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64el"}


class ExecutorBuildError(Exception):
    """A step of the executor build failed; the message says which and what to do."""


def log(msg: str) -> None:
    print(f"executor: {msg}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 3600) -> str:
    """Run ``cmd``; on failure raise with its output's tail."""
    p = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-25:])
        raise ExecutorBuildError(f"{' '.join(cmd[:4])} ... failed ({p.returncode}):\n{tail}")
    return p.stdout


def trustbuild_cmd(*args: str) -> list[str]:
    """``python -m trustbuild`` from this checkout."""
    return [sys.executable, "-m", "trustbuild", *args]


def checkout_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def repository_of(ref: str) -> str:
    """``HOST/REPO`` of an image reference (trustbuild's parser, from this checkout)."""
    sys.path.insert(0, str(ROOT))
    from trustbuild.oci.reference import Reference

    return Reference.parse(ref).name


# ---------------------------------------------------------------------------- Debian rootfs


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org."""
    texts: list[str] = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.suffix in (".list", ".sources") and p.is_file():
            texts.append(p.read_text(errors="replace"))
    for text in texts:
        for line in text.splitlines():
            m = re.match(r"\s*(?:URIs:|deb(?:\s+\[[^]]*\])?)\s+(\S+)", line)
            if m and not line.lstrip().startswith("#"):
                uri = m.group(1).rstrip("/")
                if uri.startswith(("http://", "https://", "file:/")) and "security" not in uri:
                    if "debian" in uri:
                        return uri
    return DEFAULT_MIRROR


def deb_arch() -> str:
    machine = platform.machine()
    if machine not in _DEB_ARCH:
        raise ExecutorBuildError(f"no Debian architecture known for {machine}")
    return _DEB_ARCH[machine]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def trim(root: Path) -> None:
    """Drop package caches, apt lists and documentation (but the copyright files)."""
    for rel in _TRIM:
        d = root / rel
        if not d.is_dir():
            continue
        for child in d.iterdir():
            if rel == "usr/share/doc" and child.is_dir() and not child.is_symlink():
                for f in child.iterdir():
                    if f.name != "copyright":
                        _remove(f)
            elif child.name not in ("partial", "lock", "auxfiles"):
                _remove(child)


def rootfs_tarball(cache: Path, mirror: str) -> Path:
    """The cached base rootfs tarball; debootstrap it first if there is none."""
    key = hashlib.sha256(json.dumps([SUITE, PACKAGES, _TRIM]).encode()).hexdigest()[:12]
    out = cache / f"debian-{SUITE}-{deb_arch()}-{key}.tar.gz"
    if out.is_file():
        return out
    if shutil.which("debootstrap") is None:
        raise ExecutorBuildError("debootstrap is not installed: run `make setup` (.ci/setup.sh)")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    try:
        root = work / "root"
        log(f"debootstrap {SUITE} from {mirror} (once per machine; cached in {out})")
        run(["debootstrap", "--variant=minbase", f"--arch={deb_arch()}",
             f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror], timeout=3600)
        trim(root)
        tmp = work / "rootfs.tar.gz"
        # /dev, /proc and /sys are provided by whoever runs the image: keep only the directories
        run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "--exclude=./dev/*",
             "--exclude=./proc/*", "--exclude=./sys/*", "-czf", str(tmp), "."])
        os.replace(tmp, out)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def base_layout(cache: Path, tarball: Path) -> Path:
    """The rootfs as an OCI image layout (tag ``SUITE``), built once by trustbuild."""
    layout = cache / f"{tarball.name.removesuffix('.tar.gz')}-layout"
    if (layout / "index.json").is_file():
        return layout
    with tempfile.TemporaryDirectory(prefix="base-", dir=cache) as tmp:
        ctx = Path(tmp) / "ctx"
        ctx.mkdir()
        os.link(tarball, ctx / "rootfs.tar.gz")
        (ctx / "Dockerfile").write_text(
            f"# Debian {SUITE} minbase made by debootstrap (executor/build.py)\n"
            "FROM scratch\nADD rootfs.tar.gz /\n"
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            'CMD ["/bin/bash"]\n')
        partial = Path(tmp) / "layout"  # private: concurrent builds do not clash
        log(f"importing {tarball.name} as a base image")
        run(trustbuild_cmd("build", "--context", str(ctx), "--no-push", "--reproducible",
                           "--destination", f"{BASE_REPO}:{SUITE}",
                           "--oci-layout-path", str(partial)), env=checkout_env())
        try:
            os.rename(partial, layout)
        except OSError:
            if not (layout / "index.json").is_file():  # not another process's finished copy
                raise
    return layout


# ---------------------------------------------------------------------------- registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def loopback_registry() -> Iterator[str]:
    """A private ``docker-registry`` on 127.0.0.1 for the base image; stopped afterwards."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        raise ExecutorBuildError("docker-registry is not installed: run `make setup`, "
                                 "or pass --base-registry HOST")
    tmp = Path(tempfile.mkdtemp(prefix="executor-registry-"))
    port = _free_port()
    cfg = {"version": 0.1, "log": {"level": "error"},
           "storage": {"filesystem": {"rootdirectory": str(tmp / "storage")}},
           "http": {"addr": f"127.0.0.1:{port}"}}
    (tmp / "config.yml").write_text(json.dumps(cfg))
    logf = open(tmp / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "serve", str(tmp / "config.yml")], stdout=logf,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise ExecutorBuildError("docker-registry exited: "
                                         + (tmp / "registry.log").read_text()[-500:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


def push_base(layout: Path, registry: str) -> str:
    """Copy the base layout into ``registry``; return ``HOST/REPO@DIGEST``."""
    dest = f"{registry}/{BASE_REPO}:{SUITE}"
    run(trustbuild_cmd("copy", f"oci:{layout}:{SUITE}", f"docker://{dest}"), env=checkout_env())
    index = json.loads((layout / "index.json").read_text())
    digest = next(m["digest"] for m in index["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == SUITE)
    return f"{registry}/{BASE_REPO}@{digest}"


# ---------------------------------------------------------------------------- wheels


def build_wheel(dest: Path, work: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of this checkout (no stale build/ leaks in)."""
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in SOURCE_PARTS:
        p = ROOT / part
        if p.is_dir():
            shutil.copytree(p, src / part, ignore=ignore)
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / part)
    dest.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(src)],
        env=env, cwd=work)
    wheels = sorted(dest.glob("trustbuild-*.whl"))
    if len(wheels) != 1:
        raise ExecutorBuildError(f"expected one trustbuild wheel in {dest}, found {wheels}")
    return wheels[0]


def image_python(tarball: Path) -> str:
    """``3.11`` for the python3.11 the base rootfs carries."""
    out = run(["tar", "-tzf", str(tarball), "--wildcards", "./usr/bin/python3.*"])
    versions = sorted({m.group(1) for m in re.finditer(r"python(3\.\d+)$", out, re.M)})
    if not versions:
        raise ExecutorBuildError(f"{tarball}: no /usr/bin/python3.X in the base rootfs")
    return versions[-1]


def dependency_wheels(wheel: Path, dest: Path, py: str) -> None:
    """Binary wheels of trustbuild's dependencies for CPython ``py`` on this architecture."""
    machine = platform.machine()
    tag = py.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(dest),
           "--only-binary=:all:", "--python-version", py, "--implementation", "cp",
           "--abi", f"cp{tag}", "--abi", "abi3", "--abi", "none"]
    for plat in ("manylinux_2_36", "manylinux_2_28", "manylinux_2_17", "manylinux2014", "linux"):
        cmd += ["--platform", f"{plat}_{machine}"]
    run([*cmd, str(wheel)], env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


# ---------------------------------------------------------------------------- the image


def build_executor(*, cache: Path, destination: str | None, oci_layout: Path | None,
                   sign_key: str | None, base_registry: str | None, mirror: str | None,
                   policy: str | None = None) -> str:
    """Build the executor image; return ``LOCATION@DIGEST``."""
    if os.geteuid() != 0:
        raise ExecutorBuildError("run as root: debootstrap and the RUN sandbox need it")
    cache.mkdir(parents=True, exist_ok=True)
    tarball = rootfs_tarball(cache, mirror or apt_mirror())
    layout = base_layout(cache, tarball)
    with tempfile.TemporaryDirectory(prefix="executor-ctx-") as tmp:
        work = Path(tmp)
        ctx = work / "ctx"
        (ctx / "wheels").mkdir(parents=True)
        wheel = build_wheel(ctx / "wheels", work / "wheel")
        dependency_wheels(wheel, ctx / "wheels", image_python(tarball))
        for name in ("Dockerfile", "relocate.py"):
            shutil.copy2(ROOT / "executor" / name, ctx / name)
        with contextlib.ExitStack() as stack:
            registry = base_registry or stack.enter_context(loopback_registry())
            base = push_base(layout, registry)
            log(f"base image {base}")
            args = ["build", "--context", str(ctx), "--build-arg", f"PYTHON_IMAGE={base}",
                    "--digest-file", str(work / "digest")]
            if destination:
                args += ["--destination", destination]
                where = repository_of(destination)
            else:
                out = oci_layout or cache / "executor-layout"
                shutil.rmtree(out, ignore_errors=True)
                args += ["--no-push", "--destination", "trustbuild/executor:latest",
                         "--oci-layout-path", str(out)]
                where = f"oci:{out}"
            if sign_key:
                args += ["--sign-key", sign_key, "--attest", "provenance,sbom"]
            if policy:
                args += ["--policy", policy]
            log("building executor/Dockerfile")
            run(trustbuild_cmd(*args), env=checkout_env())
        digest = (work / "digest").read_text().strip()
    return f"{where}@{digest}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--destination", metavar="REF", help="push the executor here")
    p.add_argument("--oci-layout", metavar="DIR", type=Path,
                   help="write an OCI layout here (default: CACHE/executor-layout)")
    p.add_argument("--sign-key", metavar="KEY", help="sign; attach provenance and an SBOM")
    p.add_argument("--policy", metavar="FILE|NAME", help="policy the executor build must satisfy")
    p.add_argument("--cache-dir", metavar="DIR", type=Path, default=ROOT / ".cache" / "executor")
    p.add_argument("--base-registry", metavar="HOST",
                   help="loopback registry for the base image (default: start one)")
    p.add_argument("--mirror", metavar="URL", help="Debian mirror (default: the one apt uses)")
    a = p.parse_args(argv)
    try:
        ref = build_executor(cache=a.cache_dir, destination=a.destination,
                             oci_layout=a.oci_layout, sign_key=a.sign_key,
                             base_registry=a.base_registry, mirror=a.mirror, policy=a.policy)
    except (ExecutorBuildError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"executor: error: {exc}", file=sys.stderr)
        return 1
    print(f"executor: {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
