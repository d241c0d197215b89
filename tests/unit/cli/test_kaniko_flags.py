"""``trustbuild build`` takes a Kaniko user's command line: every executor flag of Kaniko's
root.go is accepted with Kaniko's meaning or refused with one line naming the trustbuild way;
no parser of the CLI guesses abbreviations."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trustbuild.cli.cmd_build import options_from_args
from trustbuild.cli.kaniko_compat import parse_go_duration
from trustbuild.cli.main import build_parser
from trustbuild.errors import UsageError

ASSET = Path(__file__).parents[2] / "assets" / "cli" / "kaniko_executor_flags.txt"


def _flags() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in ASSET.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            flag, kind, sample, expected = line.split()
            rows.append((flag, kind, sample, expected))
    return rows


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["build", *argv])


@pytest.fixture(autouse=True)
def _no_kaniko_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KANIKO_DIR", "KANIKO_NO_PUSH", "KANIKO_REGISTRY_MIRROR", "KANIKO_REGISTRY_MAP",
                 "KANIKO_CLEANUP", "KANIKO_PRE_CLEANUP", "KANIKO_PRESERVE_CONTEXT"):
        monkeypatch.delenv(name, raising=False)


def test_asset_lists_every_flag_once() -> None:
    flags = [f for f, *_ in _flags()]
    assert len(flags) == len(set(flags)) == 73


@pytest.mark.parametrize(("flag", "kind", "sample", "expected"), _flags(),
                         ids=[f[0] for f in _flags()])
def test_every_kaniko_flag_is_accepted_or_refused_in_one_line(
        flag: str, kind: str, sample: str, expected: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    forms = [[f"{flag}={sample}"] if flag.startswith("--") else [flag, sample]]
    if kind == "value" and flag.startswith("--"):
        forms.append([flag, sample])
    if kind == "bool":
        forms.append([flag])  # a bare boolean means true
    for form in forms:
        argv = ["build", "-d", "registry.example/app:1", *form]
        if expected == "refuse":
            with pytest.raises(SystemExit) as exc:
                build_parser().parse_args(argv)
            assert exc.value.code == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert flag in err and "not supported" in err, err
            continue
        args = build_parser().parse_args(argv)
        options_from_args(args)  # the values make sense to the build, too


@pytest.mark.parametrize("flag", ["--insecure-pull", "--single-snapshot", "--dryrun"])
def test_refused_booleans_set_to_false_are_what_trustbuild_does(flag: str) -> None:
    options_from_args(_parse("-d", "r.example/a:1", f"{flag}=false"))


def test_booleans_take_pflag_forms() -> None:
    for value, want in (("true", True), ("1", True), ("T", True), ("False", False), ("0", False)):
        assert _parse("--cache=" + value, "--no-push=" + value).cache is want
    assert _parse("--reproducible").reproducible is True
    assert _parse("--skip-tls-verify=false").skip_tls_verify is False


def test_bad_boolean_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse("--cache=yes-please")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--cache='yes-please': expected true or false" in err


def test_no_prefix_matching_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    todo = [parser]
    seen = 0
    while todo:
        p = todo.pop()
        seen += 1
        assert p.allow_abbrev is False, p.prog
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    assert seen > 10
    for abbrev in ("--dest", "--destin", "--reprod", "--no-p"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["build", abbrev, "x"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_verbosity_levels_and_counts() -> None:
    assert _parse("-v").verbose == 1
    assert _parse("-vv").verbose == 2
    assert _parse("-v", "debug").verbose == 1
    assert _parse("--verbosity=info").verbose == 0
    assert _parse("--verbosity", "trace").verbose == 2
    with pytest.raises(SystemExit):
        _parse("--verbosity=loud")


@pytest.mark.parametrize(("kaniko", "trustbuild"), [
    ("full", "full"), ("redo", "walk"), ("time", "walk"), ("auto", "auto"), ("overlay", "overlay")])
def test_snapshot_modes_map(kaniko: str, trustbuild: str) -> None:
    opts = options_from_args(_parse("-d", "r.example/a:1", "--snapshot-mode", kaniko))
    assert opts.snapshot_mode == trustbuild
    opts = options_from_args(_parse("-d", "r.example/a:1", f"--snapshotMode={kaniko}"))
    assert opts.snapshot_mode == trustbuild


def test_bad_snapshot_mode() -> None:
    with pytest.raises(UsageError, match="--snapshot-mode 'fast'"):
        options_from_args(_parse("-d", "r.example/a:1", "--snapshot-mode", "fast"))


def test_deprecated_camelcase_flags_map(capsys: pytest.CaptureFixture[str]) -> None:
    opts = options_from_args(_parse("-d", "r.example/a:1", "--customPlatform=linux/arm64",
                                    "--tarPath", "/tmp/x.tar"))
    assert str(opts.platform) == "linux/arm64" and opts.tar_path == "/tmp/x.tar"
    assert "--customPlatform is deprecated" in capsys.readouterr().err


def test_go_durations() -> None:
    assert parse_go_duration("6h", "f") == 6 * 3600
    assert parse_go_duration("1h30m", "f") == 5400
    assert parse_go_duration("336h0m0s", "f") == 336 * 3600
    assert parse_go_duration("1.5s", "f") == 1.5
    with pytest.raises(UsageError):
        parse_go_duration("two weeks", "--cache-ttl")
    opts = options_from_args(_parse("-d", "r.example/a:1", "--cache-ttl=6h", "--cache-dir=/c"))
    assert opts.cache_ttl == 21600 and opts.cache_dir == "/c"


def test_registry_flags_map_to_store_options() -> None:
    opts = options_from_args(_parse(
        "-d", "push.example:5000/app:1", "--insecure", "--cache-repo", "cache.example/c",
        "--skip-tls-verify-registry", "self.example", "--registry-map",
        "index.docker.io=mirror.example;quay.io=q1.example", "--registry-map", "quay.io=q2.example",
        "--skip-default-registry-fallback"))
    so = opts.store_options
    assert set(so.insecure_registries) == {"push.example:5000", "cache.example"}
    assert so.skip_tls_verify_registries == ("self.example",)
    assert so.registry_maps == {"docker.io": ("mirror.example",),
                                "quay.io": ("q1.example", "q2.example")}
    assert so.skip_default_registry_fallback is True


def test_registry_map_needs_hosts() -> None:
    with pytest.raises(UsageError, match="REGISTRY=MIRROR"):
        options_from_args(_parse("-d", "r.example/a:1", "--registry-map", "quay.io"))
    with pytest.raises(UsageError, match="without a repository path"):
        options_from_args(_parse("-d", "r.example/a:1", "--registry-map", "quay.io=m.example/p"))


def test_kaniko_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANIKO_DIR", "/kaniko-elsewhere")
    monkeypatch.setenv("KANIKO_NO_PUSH", "true")
    monkeypatch.setenv("KANIKO_REGISTRY_MIRROR", "mirror.example")
    monkeypatch.setenv("KANIKO_REGISTRY_MAP", "quay.io=q.example")
    opts = options_from_args(_parse("--tar-path", "/tmp/x.tar"))
    assert opts.no_push is True
    assert opts.kaniko_dir == Path("/kaniko-elsewhere")
    assert "mirror.example" in opts.store_options.registry_mirrors
    assert opts.store_options.registry_maps == {"quay.io": ("q.example",)}
    # the flag wins over KANIKO_DIR, as in Kaniko
    flagged = options_from_args(_parse("--tar-path", "/x", "--kaniko-dir", "/k"))
    assert flagged.kaniko_dir == Path("/k")
    monkeypatch.setenv("KANIKO_NO_PUSH", "maybe")
    with pytest.raises(UsageError, match="KANIKO_NO_PUSH"):
        options_from_args(_parse("--tar-path", "/tmp/x.tar"))


def test_kaniko_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = options_from_args(_parse("-d", "r.example/a:1"))
    assert opts.kaniko_dir == Path("/kaniko") and opts.ignore_var_run is True
    opts = options_from_args(_parse("-d", "r.example/a:1", "--ignore-var-run=false",
                                    "--ignore-path", "/var/mail"))
    assert opts.ignore_var_run is False and opts.ignore_paths == ["/var/mail"]
    assert options_from_args(_parse("-d", "r.example/a:1", "--whitelist-var-run=false")
                             ).ignore_var_run is False


def test_git_options_pick_the_branch() -> None:
    opts = options_from_args(_parse("-d", "r.example/a:1", "-c", "git://github.com/o/r.git",
                                    "--git", "branch=release", "--git", "single-branch=true"))
    assert opts.context == "git://github.com/o/r.git#refs/heads/release"
    with pytest.raises(UsageError, match="insecure-skip-tls=true"):
        options_from_args(_parse("-d", "r.example/a:1", "-c", "git://h/r.git",
                                 "--git", "insecure-skip-tls=true"))
    with pytest.raises(UsageError, match="unknown key"):
        options_from_args(_parse("-d", "r.example/a:1", "--git", "colour=blue"))


def test_bucket_is_a_gcs_context() -> None:
    assert options_from_args(_parse("-d", "r.example/a:1", "-b", "ctx-bucket")
                             ).context == "gs://ctx-bucket"
    assert options_from_args(_parse("-d", "r.example/a:1", "--bucket", "s3://b/c.tar.gz")
                             ).context == "s3://b/c.tar.gz"


def test_cache_run_and_copy_layers_choose_what_is_cached() -> None:
    opts = options_from_args(_parse("-d", "r.example/a:1", "--cache=true",
                                    "--cache-run-layers=false"))
    assert opts.cache is True and opts.cache_run_layers is False and opts.cache_copy_layers
    opts = options_from_args(_parse("-d", "r.example/a:1", "--cache=true",
                                    "--cache-copy-layers=false", "--cache-ttl=6h",
                                    "--cache-dir=/tmp/store"))
    assert opts.cache_run_layers and opts.cache_copy_layers is False
    assert opts.cache_ttl == 6 * 3600 and opts.cache_dir == "/tmp/store"
    assert options_from_args(_parse("-d", "r.example/a:1")).cache_dir is None
    assert options_from_args(_parse("-d", "r.example/a:1", "--cache")).cache_dir  # the default
    assert options_from_args(_parse("-d", "r.example/a:1", "--cache",
                                    "--no-cache-dir")).cache_dir is None


def test_compression_level_minus_one_is_the_default() -> None:
    assert options_from_args(_parse("-d", "r.example/a:1", "--compression-level=-1")
                             ).compression_level is None


def test_several_targets_are_refused() -> None:
    with pytest.raises(UsageError, match="one target per run"):
        options_from_args(_parse("-d", "r.example/a:1", "--target", "a,b"))


def test_json_log_format_and_color() -> None:
    assert options_from_args(_parse("-d", "r.example/a:1", "--log-format", "color")
                             ).log_format == "text"


def test_dockerfile_url_is_refused_with_the_way() -> None:
    with pytest.raises(UsageError, match="--dockerfile - < FILE"):
        options_from_args(_parse("-d", "r.example/a:1", "-f", "https://example.com/Dockerfile"))


@pytest.mark.parametrize("argv", [
    ["--platform", "linux/amd64,linux/arm64"],
    ["--custom-platform", "linux/amd64,linux/arm64"],
    ["--platform", "linux/amd64,linux/arm64/v8", "--custom-platform", "linux/amd64, linux/arm64"],
])
def test_platform_is_custom_platform(argv: list[str]) -> None:
    """buildah/podman/buildx spell it --platform: the same list, the same index build."""
    opts = options_from_args(_parse("-d", "r.example/a:1", *argv))
    assert [str(p) for p in opts.platforms] == ["linux/amd64", "linux/arm64"]
    assert str(opts.platform) == "linux/amd64"
    one = options_from_args(_parse("-d", "r.example/a:1", "--platform", "linux/arm64"))
    assert str(one.platform) == "linux/arm64" and one.platforms == []
    assert str(one.store_options.platform) == "linux/arm64"


@pytest.mark.parametrize("argv, msg", [
    (["--platform", "linux/amd64,,linux/arm64"], "--platform 'linux/amd64,,linux/arm64': empty"),
    (["--platform", "linux/arm64,linux/arm64"], "listed twice"),
    (["--platform", "arm64"], "invalid platform 'arm64'"),
    (["--platform", "linux/arm64", "--custom-platform", "linux/amd64"],
     "--platform 'linux/arm64' and --custom-platform 'linux/amd64' differ"),
    (["--platform", "linux/arm64", "--customPlatform", "linux/amd64,linux/arm64"], "differ"),
])
def test_bad_platform_is_a_usage_error(argv: list[str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg) as exc:
        options_from_args(_parse("-d", "r.example/a:1", *argv))
    assert "\n" not in str(exc.value)
