"""RUN --mount in the sandbox: read-write binds and tmpfs in every snapshot mode; the mounts'
content never reaches the layer and only the missing parents of a target stay (like buildah)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from trustbuild.errors import SandboxError
from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _names(layer: Path) -> list[str]:
    with tarfile.open(layer) as t:
        return sorted(n.rstrip("/") for n in t.getnames())


@pytest.mark.parametrize("mode", ["overlay", "walk", "full"])
def test_rw_bind_and_tmpfs_are_used_but_not_captured(mode: str, busybox_rootfs: Path,
                                                     tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "old").write_text("from an earlier step\n")
    ro = tmp_path / "ro.txt"
    ro.write_text("read-only\n")
    script = ("cat /var/c/old && echo new > /var/c/new && "
              "echo t > /t1/t2/t && test \"$(cat /t1/t2/t)\" = t && "
              "cat /opt/ro.txt && ! echo x >> /opt/ro.txt && echo kept > /out")
    mounts = [(str(cache), "/var/c", "rw"), ("size=1048576", "/t1/t2", "tmpfs"),
              (str(ro), "/opt/ro.txt", "ro")]
    with StepRunner(busybox_rootfs, tmp_path / "s", snapshot_mode=mode,
                    output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", script], env={}, extra_mounts=mounts),
                    tmp_path / "l.tar")
        assert res.exit_code == 0, res.output_tail
        assert res.snapshot_mode == mode
    assert (cache / "new").read_text() == "new\n"  # a rw bind writes through to the host dir
    names = _names(res.layer.path)  # type: ignore[union-attr]
    assert "out" in names
    for hidden in ("var/c", "var/c/new", "var/c/old", "t1/t2", "t1/t2/t", "opt/ro.txt"):
        assert hidden not in names, (mode, names)
    assert "t1" in names and "opt" in names  # missing parents stay, like buildah
    assert os.listdir(busybox_rootfs / "t1") == [] and os.listdir(busybox_rootfs / "opt") == []
    assert not (busybox_rootfs / "var" / "c").exists()


def test_bad_mounts_are_refused(busybox_rootfs: Path, tmp_path: Path) -> None:
    with StepRunner(busybox_rootfs, tmp_path / "s", output=io.StringIO()) as r:
        for mounts, match in (([("size=lots", "/t", "tmpfs")], "only size="),
                              ([(str(tmp_path), "/m", "bogus")], "mount mode"),
                              ([("", "/a", "tmpfs"), ("", "/a", "tmpfs")], "used twice"),
                              ([("", "/proc/x", "tmpfs")], "reserved")):
            with pytest.raises(SandboxError, match=match):
                r.run(RunSpec(["/bin/sh", "-c", "true"], env={}, extra_mounts=mounts),
                      tmp_path / "l.tar")


@pytest.mark.parametrize("mode", ["overlay", "walk", "full"])
def test_secret_files_are_shown_read_only_and_never_captured(mode: str, busybox_rootfs: Path,
                                                             tmp_path: Path) -> None:
    from trustbuild.sandbox.spec import SecretFile

    value = b"tb-sandbox-secret-" + os.urandom(8).hex().encode()
    script = ('test "$(cat /run/secrets/a)" = "$EXPECT" && '
              'test "$(stat -c %a:%u:%g /run/secrets/a)" = 440:5:6 && '
              '! echo x >> /run/secrets/a && test "$S_ENV" = "$EXPECT" && '
              'cat /run/secrets/a && echo && echo kept > /out')
    out = io.StringIO()
    with StepRunner(busybox_rootfs, tmp_path / "s", snapshot_mode=mode, output=out) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", script], env={"EXPECT": value.decode()},
                            secrets=[SecretFile("/run/secrets/a", value, mode=0o440, uid=5,
                                                gid=6)],
                            secret_env={"S_ENV": value.decode()}),
                    tmp_path / "l.tar")
        assert res.exit_code == 0, res.output_tail
    names = _names(res.layer.path)  # type: ignore[union-attr]
    assert "out" in names and "run/secrets/a" not in names
    assert not (busybox_rootfs / "run" / "secrets" / "a").exists()
    assert value.decode() not in out.getvalue() and "<redacted>" in out.getvalue()
    for path in [*busybox_rootfs.rglob("*"), *(tmp_path / "s").rglob("*")]:
        if path.is_file() and not path.is_symlink():
            assert value not in path.read_bytes(), path
    with tarfile.open(res.layer.path) as t:  # type: ignore[union-attr]
        for info in t:
            if info.isreg():
                assert value not in t.extractfile(info).read()  # type: ignore[union-attr]
