"""Expansion and ENV/LABEL/ARG parsing agree with buildah (an independent Dockerfile frontend).

Each Dockerfile is ``FROM scratch`` plus metadata instructions only (no RUN), built by
``buildah bud`` in a private storage root; its config Env/Labels/WorkingDir/User/ExposedPorts
are compared with what trustbuild's parser and ``expand`` give under Docker's scoping rules.
Debian's buildah (1.28) predates ``${V-x}``, ``${V+x}``, ``${V#p}``/``%``/``/`` and backtick
escapes inside double quotes, and it ignores ``# escape=`` when expanding, so those are covered
by test_expand.py's buildkit tables only.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.builder.expand import expand

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah not installed"),
]

Build = Callable[[str, dict[str, str]], dict[str, object]]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def evaluate(text: str, build_args: dict[str, str]) -> dict[str, object]:
    """The config Docker's rules give for a FROM-scratch Dockerfile of metadata instructions."""
    df = parse_dockerfile(text)
    esc = df.escape
    meta: dict[str, str] = {}
    for inst in df.global_args:
        for name, default in inst.arg_defs:
            value = build_args.get(name, expand(default, meta, escape=esc)
                                   if default is not None else None)
            if value is not None:
                meta[name] = value
    args: dict[str, str] = {}
    env: dict[str, str] = {"PATH": DEFAULT_PATH}
    labels: dict[str, str] = {}
    workdir, user, ports = "/", "", set[str]()
    for inst in df.stages[-1].instructions:
        scope = {**args, **env}
        if inst.cmd == "ARG":
            for name, default in inst.arg_defs:
                name = expand(name, scope, escape=esc)
                if name in build_args:
                    args[name] = build_args[name]
                elif default is not None:
                    args[name] = expand(default, scope, escape=esc)
                elif name in meta:
                    args[name] = meta[name]
                scope = {**args, **env}
        elif inst.cmd in ("ENV", "LABEL"):
            target = env if inst.cmd == "ENV" else labels
            for k, v in inst.pairs:  # all pairs see the values from before the instruction
                target[expand(k, scope, escape=esc)] = expand(v, scope, escape=esc)
        elif inst.cmd == "WORKDIR":
            workdir = posixpath.join(workdir, expand(inst.args[0], scope, escape=esc))
        elif inst.cmd == "USER":
            user = expand(inst.args[0], scope, escape=esc)
        elif inst.cmd == "EXPOSE":
            for word in inst.args:
                port = expand(word, scope, escape=esc)
                ports.add(port if "/" in port else port + "/tcp")
    return {"Env": [f"{k}={v}" for k, v in env.items()], "Labels": labels,
            "WorkingDir": workdir, "User": user, "ExposedPorts": sorted(ports)}


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    base = tmp_path_factory.mktemp("buildah")
    storage = ["--root", str(base / "root"), "--runroot", str(base / "runroot"),
               "--storage-driver", "vfs"]
    counter = iter(range(1000))

    def build(text: str, build_args: dict[str, str]) -> dict[str, object]:
        ctx = base / f"ctx{next(counter)}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(text)
        tag = f"localhost/frontend-{ctx.name}:1"
        cmd = ["buildah", *storage, "bud", "--format", "docker", "-t", tag]
        for k, v in build_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        proc = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = subprocess.run(["buildah", *storage, "inspect", "--type", "image", tag],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        config = json.loads(out)["Docker"]["config"]
        labels = {k: v for k, v in (config.get("Labels") or {}).items()
                  if not k.startswith("io.buildah.")}
        return {"Env": config.get("Env") or [], "Labels": labels,
                "WorkingDir": config.get("WorkingDir") or "/", "User": config.get("User") or "",
                "ExposedPorts": sorted(config.get("ExposedPorts") or {})}

    yield build
    subprocess.run(["buildah", *storage, "rmi", "--all", "--force"], capture_output=True,
                   timeout=120)
    shutil.rmtree(base, ignore_errors=True)


CASES = {
    "quoting": (
        'FROM scratch\nENV A=plain B="double $PATH" C=\'single $PATH\' D=esc\\ aped\\$X '
        'E="q\\"uote" F=a"b"c\'d\'\n', {}),
    "defaults": (
        "FROM scratch\nARG SET=value\nARG EMPTY=\n"
        "ENV D1=${SET:-d} D2=${EMPTY:-d} D4=${UNSET:-d} P1=${SET:+p} P2=${EMPTY:+p} "
        "P4=${UNSET:+p} N=${SET:-${EMPTY:-x}}\n", {}),
    "scoping": (
        "ARG G=global\nARG H\nFROM scratch\nARG G\nARG H\nARG L=local-$G\n"
        "ENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc G2=$G H2=${H:-none} L2=$L\n",
        {"H": "from-cli"}),
    "legacy-and-labels": (
        "FROM scratch\nARG V=1.2\nENV LEGACY  spaced   words  $V\n"
        'LABEL "com.example.key"="v$V" multi="a b c" \\\n      other=x\nLABEL single value $V\n',
        {}),
    "workdir-user-expose": (
        "FROM scratch\nARG D=app\nARG P=8080\nWORKDIR /srv/$D\nWORKDIR sub/${D}2\n"
        "USER ${D}:${D}\nEXPOSE $P 9090/udp ${P}1\n", {"P": "7070"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_buildah(buildah: Build, case: str) -> None:
    text, build_args = CASES[case]
    assert evaluate(text, build_args) == buildah(text, build_args)
