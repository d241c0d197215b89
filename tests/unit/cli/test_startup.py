"""What a ``trustbuild build`` process loads: only the command it runs, and none of what a
policy, signing or attestation needs unless the build asks for it (issue 12: start-up cost of a
rebuild)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trustbuild.cli.main import build_parser

_PROBE = """
import json, sys
from trustbuild.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"jsonschema", "yaml", "cryptography"})
cmds = sorted(m for m in sys.modules if m.startswith("trustbuild.cli.cmd_"))
print(json.dumps({"rc": rc, "heavy": heavy, "commands": cmds}))
"""


def _run(args: list[str]) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.splitlines()[-1]))


def test_a_build_loads_only_the_build_command_and_no_policy_or_signing_code(
        tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (tmp_path / "f").write_text("hi\n")
    got = _run(["build", "--context", str(tmp_path), "--no-push", "--mode", "chroot"])
    assert got["rc"] == 0
    assert got["heavy"] == []  # jsonschema/yaml (policy), cryptography (signing) not loaded
    assert got["commands"] == ["trustbuild.cli.cmd_build"]


def test_a_command_registered_by_a_shared_module_still_parses(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("x")
    got = _run(["version"])
    assert got["commands"] == ["trustbuild.cli.cmd_version"]
    # sign-blob lives in cmd_blob; its parser is there when it is the command
    proc = subprocess.run([sys.executable, "-m", "trustbuild", "sign-blob", "--help"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3])))
    assert proc.returncode == 0 and "--output-signature" in proc.stdout


def test_help_and_unknown_commands_still_list_every_command() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"build", "sign", "sign-blob", "public-key", "policy", "cache"} <= names
    proc = subprocess.run([sys.executable, "-m", "trustbuild", "bogus"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3])))
    assert proc.returncode == 2 and "sign-blob" in proc.stderr and "public-key" in proc.stderr


def test_the_run_helper_starts_with_only_what_a_step_needs() -> None:
    """Every RUN step starts ``python -S -P -m trustbuild.sandbox.helper``; what it imports is
    paid once per step (29 times in bench w3), so typing, json/re, pathlib and socket stay out."""
    probe = ("import sys, trustbuild.sandbox.helper; "
             "print(' '.join(sorted(m for m in ('typing', 'json', 're', 'pathlib', 'socket', "
             "'base64', 'ctypes') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-S", "-P", "-c", probe], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ctypes"]  # the syscalls (mount, unshare, pivot_root, ...)


_EXIT_PROBE = """
import atexit, sys, threading, time
from pathlib import Path
from trustbuild.cli.main import exit_now
out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
if sys.argv[2] == "thread":
    def late() -> None:
        time.sleep(0.3)
        (out / "thread").write_text("finished")
    threading.Thread(target=late).start()
sys.stdout.write("unflushed output")  # no newline: still in the buffer of a pipe
exit_now(3)
"""


def test_exit_now_runs_atexit_flushes_and_keeps_the_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _EXIT_PROBE, str(tmp_path), "-"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3])))
    assert proc.returncode == 3
    assert proc.stdout == "unflushed output"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_exit_now_waits_for_a_running_thread(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _EXIT_PROBE, str(tmp_path), "thread"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3])))
    assert proc.returncode == 3
    assert (tmp_path / "thread").read_text() == "finished"  # not cut short by os._exit
    assert (tmp_path / "atexit").read_text() == "ran"



def test_exit_now_leaves_a_profile_to_be_written(tmp_path: Path) -> None:
    """``python -m cProfile -o F`` writes F after the script returns: exit normally for it."""
    script = tmp_path / "probe.py"
    script.write_text("from trustbuild.cli.main import exit_now\nexit_now(0)\n")
    out = tmp_path / "probe.prof"
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), str(script)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3])))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
