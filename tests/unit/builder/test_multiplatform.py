"""--custom-platform lists and the qemu-user emulation check."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild.builder import emulation
from trustbuild.builder.multiplatform import parse_platforms
from trustbuild.errors import TrustbuildError, UsageError
from trustbuild.oci.descriptor import Platform


def test_a_comma_list_is_several_platforms() -> None:
    got = parse_platforms("linux/amd64, linux/arm64/v8,linux/arm/v7")
    assert [str(p) for p in got] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


@pytest.mark.parametrize("text, msg", [("linux/amd64,", "empty platform"),
                                       ("linux/arm64,linux/arm64/v8", "listed twice"),
                                       ("linux/amd64,arm64", "invalid platform")])
def test_bad_lists(text: str, msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        parse_platforms(text)


def test_native_platforms_need_no_emulation() -> None:
    amd64 = Platform("linux", "amd64")
    assert not emulation.needs_emulation(Platform("linux", "386"), amd64)
    assert emulation.needs_emulation(Platform("linux", "arm64"), amd64)
    emulation.ensure_emulation(Platform.host())  # never an error


def test_no_handler_and_not_root_is_a_one_line_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)  # binfmt_misc with nothing registered
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 1000)
    plat = Platform("linux", "s390x" if Platform.host().architecture != "s390x" else "arm64")
    with pytest.raises(TrustbuildError) as exc:
        emulation.ensure_emulation(plat)
    assert "qemu-user-static" in str(exc.value) and "\n" not in str(exc.value)


def test_a_handler_without_the_fix_binary_flag_does_not_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 1000)
    (tmp_path / "qemu-s390x").write_text("enabled\ninterpreter /usr/bin/qemu-s390x\nflags: P\n")
    if Platform.host().architecture == "s390x":
        pytest.skip("s390x is native here")
    with pytest.raises(TrustbuildError, match="F flag"):
        emulation.ensure_emulation(Platform("linux", "s390x"))
    (tmp_path / "qemu-s390x").write_text("enabled\ninterpreter /usr/bin/qemu-s390x\nflags: PF\n")
    emulation.ensure_emulation(Platform("linux", "s390x"))


def _foreign() -> Platform:
    return Platform("linux", "s390x" if Platform.host().architecture != "s390x" else "arm64")


@pytest.mark.parametrize("mode", ["subuid", "single"])
def test_rootless_build_does_not_try_to_register(mode: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside its user namespace a rootless build is uid 0, but binfmt_misc needs the machine's
    root: no registration attempt, and the error says so instead of "install qemu"."""
    from trustbuild.sandbox import userns

    monkeypatch.setattr(emulation, "BINFMT", tmp_path)  # binfmt_misc with nothing registered
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 0)
    monkeypatch.setenv(userns.MODE_ENV, mode)
    tried: list[str] = []
    monkeypatch.setattr(emulation, "_register", tried.append)
    with pytest.raises(TrustbuildError) as exc:
        emulation.ensure_emulation(_foreign())
    msg = str(exc.value)
    assert tried == []
    assert "a rootless build cannot register binfmt_misc handlers: ask root" in msg, msg
    assert "apt-get install qemu-user-static binfmt-support" in msg and "\n" not in msg


def test_machine_root_registers_the_handler(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from trustbuild.sandbox import userns

    monkeypatch.setattr(emulation, "BINFMT", tmp_path)
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 0)
    monkeypatch.delenv(userns.MODE_ENV, raising=False)
    tried: list[str] = []

    def register(qarch: str) -> None:  # what update-binfmts --enable leaves behind
        tried.append(qarch)
        (tmp_path / f"qemu-{qarch}").write_text(f"enabled\ninterpreter /usr/bin/qemu-{qarch}\n"
                                                "flags: PF\n")

    monkeypatch.setattr(emulation, "_register", register)
    plat = _foreign()
    emulation.ensure_emulation(plat)
    assert tried == [emulation._QEMU[plat.architecture]]
