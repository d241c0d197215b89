"""BuildLog: text headers and blob lines, a live bar on a terminal, JSON events, and the
line stream that turns other output (RUN steps, warnings) into events."""

from __future__ import annotations

import io
import json

from trustbuild.builder.events import BuildLog, human_bytes


def test_text_headers_and_one_line_per_blob() -> None:
    out = io.StringIO()
    log = BuildLog(out, tty=False)
    log.step_start(3, 9, "COPY src/ /app/")
    with log.blob("push", "sha256:" + "ab" * 32, 2048, where="docker://r/app") as count:
        count(1024)
        count(1024)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[3/9] COPY src/ /app/"
    assert lines[1].startswith("pushed abababababab 2.0 KiB in ") and lines[1].endswith(
        "/s) docker://r/app")
    assert "\r" not in out.getvalue()


def test_terminal_gets_a_bar_then_the_summary_line() -> None:
    out = io.StringIO()
    log = BuildLog(out, tty=True)
    with log.blob("push", "sha256:" + "cd" * 32, 100, where="docker://r/app") as count:
        count(100)  # the last chunk always draws
    text = out.getvalue()
    assert "\r\x1b[Kpush cdcdcdcdcdcd [" + "#" * 30 + "] 100 B/100 B" in text
    # the bar is cleared, then the same summary line as without a terminal
    assert "\r\x1b[Kpushed cdcdcdcdcdcd 100 B in " in text
    assert text.endswith("docker://r/app\n") and text.count("\n") == 1


def test_json_events_and_message_stream() -> None:
    out = io.StringIO()
    log = BuildLog(out, fmt="json", tty=True)  # never a bar in json mode
    log.step_start(1, 2, "FROM scratch", stage="0")
    log.stream.write("Dockerfile:2 RUN | partial ")
    log.stream.write("line\nsecond\n")
    with log.blob("pull", "sha256:" + "ef" * 32, 10, where="r/base:1") as count:
        count(10)
    log.step_end(1, 2, seconds=0.5, cached=True, stage="0")
    log.stream.write("[warning] careful\n")
    log.error("boom", kind="BuildError")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["step_start", "message", "message", "blob",
                                            "step_end", "warning", "error"]
    assert events[1]["msg"] == "Dockerfile:2 RUN | partial line" and events[2]["msg"] == "second"
    assert events[3]["bytes"] == events[3]["size"] == 10 and events[3]["direction"] == "pull"
    assert events[4]["cached"] is True and events[5]["msg"] == "careful"
    assert events[6] == {**events[6], "error": "boom", "type": "BuildError"}


def test_timestamps_prefix_text_lines_including_other_output() -> None:
    out = io.StringIO()
    log = BuildLog(out, timestamps=True)
    log.step_start(1, 1, "FROM scratch")
    log.stream.write("run output\n")
    for line in out.getvalue().splitlines():
        stamp, _, rest = line.partition(" ")
        assert stamp.endswith("Z") and "T" in stamp and rest in ("[1/1] FROM scratch",
                                                                  "run output")


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


def test_watch_growth_reports_a_growing_temp_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from trustbuild.builder.events import watch_growth

    got: list[int] = []
    with watch_growth(tmp_path, ".tmp-*", got.append, every=0.01):
        with open(tmp_path / ".tmp-abc", "wb") as f:
            for _ in range(5):
                f.write(b"x" * 1000)
                f.flush()
                time.sleep(0.03)
        (tmp_path / "other").write_bytes(b"y" * 999)  # not a temp file: not counted
        time.sleep(0.05)
    assert sum(got) == 5000 and len(got) >= 2
