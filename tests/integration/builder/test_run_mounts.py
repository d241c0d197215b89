"""``RUN --mount`` in real builds: cache reuse across steps, bind (context, rw, from= stage and
image, .dockerignore), tmpfs; contents never in the image; bad mounts refused with one error."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from fixtures.imagefs import fetch_dir, flatten, read_dir_image, tag_exists

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.privileged]

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS tools
RUN echo from-stage > /tool.txt
FROM ${BASE}
ARG BASE
WORKDIR /work
RUN --mount=type=cache,target=/root/.cache,id=dl echo one > /root/.cache/first
RUN --mount=type=cache,id=dl,target=cache2 cat cache2/first > /seen && echo two > cache2/second
RUN --mount=type=cache,target=/var/cache/apt ls -A /var/cache/apt > /apt-empty
RUN --mount=type=cache,target=/c3,uid=1000,gid=2000,mode=0700 stat -c %u:%g:%a /c3 > /c3stat
RUN --mount=type=bind,source=sub,target=/src,rw echo x > /src/new && ls /src > /ls-rw
RUN --mount=target=/ctx ls -A /ctx > /ls-ctx && ! touch /ctx/x
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t.txt cat /t.txt > /from-stage
RUN --mount=from=${BASE},target=/base test -x /base/bin/busybox && echo ok > /from-image
RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/t && cat /scratch/t > /tmpfs
RUN mkdir -p /opt/real && ln -s /opt/real /linked
RUN --mount=type=tmpfs,target=/linked/t touch /opt/real/t/x && echo ok > /symlinked
"""


def _files(layout: Path) -> dict[str, bytes]:
    """Regular files of the image in an OCI layout, after applying every layer."""
    import json

    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_bytes())
    out: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"]), mode="r:*") as tf:
            for info in tf:
                name = "/" + info.name.lstrip("./")
                if info.isreg():
                    out[name] = tf.extractfile(info).read()  # type: ignore[union-attr]
                else:
                    out.pop(name, None)
    return out


@pytest.mark.parametrize("mode", ["overlay", "walk", "full"])
def test_run_mounts_in_a_build(mode: str, tmp_path: Path, busybox_base: str, registry: object,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "sub" / "a.txt").write_text("a\n")
    (ctx / "secret.env").write_text("TOKEN=1\n")
    (ctx / ".dockerignore").write_text("secret.env\n")
    host = registry.host  # type: ignore[attr-defined]
    ref = f"{host}/run-mounts/{mode}:1"
    layout = tmp_path / "layout"
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "--destination", ref, "--oci-layout-path", str(layout),
               "--snapshot-mode", mode])
    assert rc == 0, capsys.readouterr().err[-3000:]
    files = _files(layout)
    assert files["/seen"] == b"one\n"  # the second step saw the first step's cache (same id)
    assert files["/apt-empty"] == b""
    assert files["/c3stat"] == b"1000:2000:700\n"
    assert files["/ls-rw"] == b"a.txt\nnew\n"
    assert not (ctx / "sub" / "new").exists()  # rw binds write to a copy, never the context
    assert files["/ls-ctx"] == b".dockerignore\nDockerfile\nsub\n"  # .dockerignore applies
    assert files["/from-stage"] == b"from-stage\n"
    assert files["/from-image"] == b"ok\n"
    assert files["/tmpfs"] == b"t\n"
    assert files["/symlinked"] == b"ok\n"  # a symlinked target is followed inside the image
    fs = flatten(fetch_dir(ref, tmp_path / "pushed"))
    for hidden in ("/root/.cache", "/work/cache2", "/var/cache/apt", "/c3", "/src", "/ctx",
                   "/t.txt", "/base", "/scratch", "/opt/real/t"):
        assert not any(p == hidden or p.startswith(hidden + "/") for p in fs), hidden
    _, cfg = read_dir_image(tmp_path / "pushed")
    assert any("--mount" not in h.get("created_by", "") and "cat cache2/first" in
               h.get("created_by", "") for h in cfg["history"])


BAD = {
    "escaping-source": ("RUN --mount=type=bind,source=../outside.txt,target=/o cat /o\n",
                        "outside the build context"),
    "absolute-symlink": ("RUN --mount=type=bind,source=link,target=/o cat /o\n",
                         "points outside"),
    "secret-bad-id": ("RUN --mount=type=secret,id=a/b cat /run/secrets/a\n",
                      "cannot contain '/'"),
    "unknown-option": ("RUN --mount=type=tmpfs,target=/t,colour=blue true\n", "'colour'"),
    "no-target": ("RUN --mount=type=cache,id=x true\n", "target= is required"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_mounts_fail_with_one_error(name: str, tmp_path: Path, busybox_base: str,
                                        registry: object,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    line, what = BAD[name]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo before\n" + line)
    (ctx / "link").symlink_to("/etc/passwd")
    (tmp_path / "outside.txt").write_text("not for the build")
    host = registry.host  # type: ignore[attr-defined]
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "--destination", f"{host}/run-mounts-bad/{name}:1"])
    err = capsys.readouterr().err
    assert rc == 1, err
    errors = [x for x in err.splitlines() if x.startswith("trustbuild: error:")]
    assert len(errors) == 1, err
    assert "Dockerfile:4 RUN" in errors[0] and what in errors[0], errors[0]
    assert "not for the build" not in err
    assert not tag_exists(host, f"run-mounts-bad/{name}", "1")




FLAGS_DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS tools
RUN echo from-stage > /tool.txt
FROM ${BASE}
RUN --mount=type=cache,target=/c,id=flags \\
    --mount=type=bind,source=sub,target=/ctx-ro \\
    --mount=type=bind,source=sub,target=/ctx-rw,rw \\
    --mount=type=bind,from=tools,source=/,target=/stage \\
    --mount=type=tmpfs,target=/t \\
    cat /proc/self/mountinfo > /mountinfo
"""
# Device binds need dev (devpts: the ptys); they are still nosuid.
_NEED_DEV = {f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom", "tty", "pts")}


@pytest.mark.parametrize("profile", ["privileged", "baseline", "restricted"])
def test_every_mount_of_a_run_step_is_nosuid_and_nodev(
        profile: str, tmp_path: Path, busybox_base: str, registry: object,
        capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "a.txt").write_text("a\n")
    (ctx / "Dockerfile").write_text(FLAGS_DOCKERFILE)
    layout = tmp_path / "layout"
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "--security-profile", profile, "--no-push", "--oci-layout-path", str(layout)])
    assert rc == 0, capsys.readouterr().err[-3000:]
    table = {}
    for line in _files(layout)["/mountinfo"].decode().splitlines():
        fields = line.split()
        table[fields[4]] = set(fields[5].split(","))
    assert {"/", "/proc", "/dev", "/sys", "/c", "/ctx-ro", "/ctx-rw", "/stage", "/t",
            "/dev/null", "/etc/hosts"} <= set(table), sorted(table)
    bad = [f"{point} {sorted(opts)}" for point, opts in table.items()
           if not ({"nosuid"} if point in _NEED_DEV else {"nosuid", "nodev"}) <= opts]
    assert bad == []
