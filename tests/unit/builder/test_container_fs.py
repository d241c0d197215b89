"""Container mode's filesystem handling (wipe, extract, save, restore) on a directory standing in
for "/", the ignore list, and the mode choice."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from trustbuild.builder import container_fs
from trustbuild.builder.container_fs import ContainerFS, resolve_mode
from trustbuild.builder.options import BuildOptions
from trustbuild.errors import SandboxError
from trustbuild.oci.extract import extract_layer
from trustbuild.sandbox.container import IgnoreList, unprotected_executor_files


def _tar(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """(name, kind file|dir|symlink, data-or-target) entries as a plain tar."""
    with tarfile.open(path, "w") as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tf.addfile(info)
            else:
                raw = data.encode()
                info.size, info.mode = len(raw), 0o644
                tf.addfile(info, io.BytesIO(raw))
    return path


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            rel = "/" + str(p.relative_to(root))
            out[rel] = ("link:" + os.readlink(p) if p.is_symlink() else
                        "dir" if p.is_dir() else p.read_text())
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for d in ("kaniko/work", "var/run", "var/lib", "etc", "usr/bin", "proc/1"):
        (r / d).mkdir(parents=True)
    (r / "kaniko/work/state").write_text("executor\n")
    (r / "var/run/pid").write_text("1\n")
    (r / "var/lib/db").write_text("old\n")
    (r / "etc/hosts").write_text("127.0.0.1 pod\n")
    (r / "etc/passwd").write_text("executor:x:0:0::/:/bin/sh\n")
    (r / "usr/bin/tool").write_text("#!\n")
    (r / "top").write_text("top\n")
    (r / "bin").symlink_to("usr/bin")
    (r / "var").chmod(0o700)
    return r


def _fs(root: Path) -> ContainerFS:
    return ContainerFS(IgnoreList(["/kaniko", "/var/run", "/etc/hosts", "/proc"]), root=root,
                       output=io.StringIO())


def test_ignore_list_matches_entries_and_below() -> None:
    ig = IgnoreList(["/kaniko/", "/var/run", "/etc/hosts"])
    assert ig("/kaniko") and ig("/kaniko/x/y") and ig("/etc/hosts")
    assert not ig("/kanikox") and not ig("/etc") and not ig("/")
    assert ig.holds_ignored("/var") and ig.holds_ignored("/etc") and not ig.holds_ignored("/usr")


def test_wipe_keeps_only_the_ignore_list(root: Path) -> None:
    _fs(root).wipe()
    assert _tree(root) == {"/kaniko": "dir", "/kaniko/work": "dir",
                           "/kaniko/work/state": "executor\n", "/var": "dir",
                           "/var/run": "dir", "/var/run/pid": "1\n", "/etc": "dir",
                           "/etc/hosts": "127.0.0.1 pod\n", "/proc": "dir", "/proc/1": "dir"}
    # a directory kept only on the way to an ignored path looks freshly made
    assert (root / "var").stat().st_mode & 0o7777 == 0o755


def test_extract_never_writes_or_deletes_ignored_paths(root: Path, tmp_path: Path) -> None:
    fs = _fs(root)
    fs.wipe()
    layer = _tar(tmp_path / "l.tar", [
        ("etc/", "dir", ""), ("etc/passwd", "file", "root:x:0:0::/root:/bin/sh\n"),
        ("etc/hosts", "file", "evil\n"),            # the pod's mount: kept
        ("kaniko/work/state", "file", "evil\n"),   # the executor's files: kept
        ("lnk", "symlink", "/kaniko"),            # a way into them through a symlink ...
        ("lnk/planted", "file", "evil\n"),         # ... is not followed
        ("var/.wh.run", "file", ""),               # whiteouts of ignored paths do nothing
        ("usr/bin/sh", "file", "shell\n"),
    ])
    extract_layer(layer, root, exclude=fs.excluded)
    assert (root / "etc/passwd").read_text() == "root:x:0:0::/root:/bin/sh\n"
    assert (root / "etc/hosts").read_text() == "127.0.0.1 pod\n"
    assert (root / "kaniko/work/state").read_text() == "executor\n"
    assert not (root / "kaniko/planted").exists()
    assert (root / "var/run/pid").exists()
    assert (root / "usr/bin/sh").read_text() == "shell\n"
    opaque = _tar(tmp_path / "o.tar", [("etc/", "dir", ""), ("etc/.wh..wh..opq", "file", ""),
                                        ("etc/group", "file", "root:x:0:\n")])
    extract_layer(opaque, root, exclude=fs.excluded)
    assert sorted(os.listdir(root / "etc")) == ["group", "hosts"]


def test_save_and_restore_a_stage(root: Path, tmp_path: Path) -> None:
    fs = _fs(root)
    fs.wipe()
    extract_layer(_tar(tmp_path / "l.tar", [
        ("app/", "dir", ""), ("app/bin", "file", "built\n"), ("sh", "symlink", "app/bin")]),
        root, exclude=fs.excluded)
    saved = fs.save(tmp_path / "stage-00")
    assert _tree(saved.root) == {"/app": "dir", "/app/bin": "built\n", "/sh": "link:app/bin",
                                 "/var": "dir", "/etc": "dir"}
    (root / "app/bin").write_text("changed by a later stage\n")
    (root / "later").write_text("x\n")
    fs.restore(saved)
    assert (root / "app/bin").read_text() == "built\n"
    assert not (root / "later").exists()
    assert (root / "kaniko/work/state").read_text() == "executor\n"


def test_executor_files_outside_the_ignore_list_are_reported(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /kaniko/lib/libc.so.6\n"
        "7f01-7f02 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f02-7f03 r--p 00000000 08:01 3 /usr/lib/locale/C.utf8/LC_CTYPE\n"
        "7f03-7f04 rw-p 00000000 00:00 0 [heap]\n")
    exe = os.path.realpath(sys.executable)
    loose = unprotected_executor_files(IgnoreList(["/kaniko", exe]), maps=str(maps))
    assert loose == ["/usr/lib/x86_64-linux-gnu/libssl.so.3"]


def test_container_mode_refuses_when_the_executor_is_not_protected() -> None:
    from trustbuild.builder.container_fs import check_executor_protected

    with pytest.raises(SandboxError, match="would delete the executor's own files"):
        check_executor_protected(IgnoreList(["/kaniko"]), force=False)
    check_executor_protected(IgnoreList(["/kaniko"]), force=True)


def test_container_mode_is_refused_outside_a_container(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setattr(container_fs, "container_hints", lambda: [])
    with pytest.raises(SandboxError, match="does not look like a container") as exc:
        resolve_mode(BuildOptions(mode="container"), tmp_path)
    assert "\n" not in str(exc.value)
    assert resolve_mode(BuildOptions(mode="container", force=True), tmp_path) == "container"
    with pytest.raises(SandboxError, match="overlay needs the RUN sandbox"):
        resolve_mode(BuildOptions(mode="container", force=True, snapshot_mode="overlay"),
                     tmp_path)
    monkeypatch.setattr(container_fs, "_PROBES", {})
    monkeypatch.setattr(container_fs, "sandbox_works", lambda o, s: (False, "no namespaces"))
    out = io.StringIO()
    assert resolve_mode(BuildOptions(mode="auto", output=out), tmp_path) == "chroot"
    assert "no namespaces" in out.getvalue() and "/ is left alone" in out.getvalue()


def test_auto_falls_back_to_container_mode_only_in_a_container(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(container_fs, "_PROBES", {})
    monkeypatch.setattr(container_fs, "container_hints", lambda: ["/.dockerenv exists"])
    monkeypatch.setattr(container_fs, "sandbox_works", lambda o, s: (False, "EPERM"))
    out = io.StringIO()
    assert resolve_mode(BuildOptions(mode="auto", output=out), tmp_path) == "container"
    assert "Kaniko" in out.getvalue()
    monkeypatch.setattr(container_fs, "_PROBES", {})
    monkeypatch.setattr(container_fs, "sandbox_works", lambda o, s: (True, ""))
    assert resolve_mode(BuildOptions(mode="auto"), tmp_path) == "chroot"


def test_a_rootless_build_never_takes_container_mode(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """In a rootless build's user namespace / is the machine's: auto stays chroot even in a
    container, and --mode container is refused (docs/rootless.md)."""
    from trustbuild.sandbox import userns

    monkeypatch.setenv(userns.MODE_ENV, "subuid")
    monkeypatch.setattr(container_fs, "_PROBES", {})
    monkeypatch.setattr(container_fs, "container_hints", lambda: ["/.dockerenv exists"])
    monkeypatch.setattr(container_fs, "sandbox_works", lambda o, s: (False, "EPERM"))
    out = io.StringIO()
    assert resolve_mode(BuildOptions(mode="auto", output=out), tmp_path) == "chroot"
    assert "cannot start in this user namespace (EPERM)" in out.getvalue()
    with pytest.raises(SandboxError, match="a rootless build is not root of the machine"):
        resolve_mode(BuildOptions(mode="container", force=True), tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="the RUN sandbox needs root")
def test_the_probe_runs_the_real_sandbox(tmp_path: Path) -> None:
    assert container_fs.sandbox_works(BuildOptions(), tmp_path) == (True, "")
    assert os.listdir(tmp_path) == []


def test_the_probe_answer_is_kept_in_the_layer_store(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    calls: list[str] = []

    def probe(options: BuildOptions, scratch: Path) -> tuple[bool, str]:
        calls.append(options.security_profile)
        return True, ""

    monkeypatch.setattr(container_fs, "sandbox_works", probe)
    store = tmp_path / "store"
    for _ in range(2):  # two build processes (the in-process memo emptied in between)
        monkeypatch.setattr(container_fs, "_PROBES", {})
        assert resolve_mode(BuildOptions(mode="auto", cache_dir=str(store)), tmp_path) == "chroot"
    assert calls == ["baseline"]
    assert len(list((store / "probes").iterdir())) == 1
    # another security profile is another answer; without a layer store nothing is kept
    monkeypatch.setattr(container_fs, "_PROBES", {})
    resolve_mode(BuildOptions(mode="auto", cache_dir=str(store), security_profile="restricted"),
                 tmp_path)
    monkeypatch.setattr(container_fs, "_PROBES", {})
    resolve_mode(BuildOptions(mode="auto"), tmp_path)
    assert calls == ["baseline", "restricted", "baseline"]
