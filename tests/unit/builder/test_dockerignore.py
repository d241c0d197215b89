""".dockerignore patterns with moby patternmatcher semantics (cases after moby's tests)."""

from __future__ import annotations

import pytest

from trustbuild.builder.dockerignore import IgnoreMatcher, go_clean
from trustbuild.errors import DockerfileError


@pytest.mark.parametrize(("pattern", "path", "want"), [
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # directory patterns exclude everything below; * never crosses /
    ("docs", "docs/a/b.md", True),
    ("*", "a/b/c", True),
    ("*/b", "a/b/c", True),
    ("*/c", "a/b/c", False),
    ("*.md", "dir/README.md", False),
    ("/abs", "abs/x", True),
    ("./rel/x", "rel/x", True),
    ("a/../b", "b", True),
    ("temp?", "temp1/x", True),
])
def test_pattern(pattern: str, path: str, want: bool) -> None:
    assert IgnoreMatcher.from_text(pattern).excluded(path) is want


def test_exceptions_last_match_wins() -> None:
    m = IgnoreMatcher.from_text("*.md\n!README*.md\nREADME-secret.md\n")
    assert m.excluded("a.md")
    assert not m.excluded("README.md")
    assert m.excluded("README-secret.md")
    assert not m.excluded("code.py")


def test_exception_inside_excluded_dir() -> None:
    m = IgnoreMatcher.from_text("logs\n!logs/keep.log\n")
    assert m.excluded("logs")
    assert m.excluded("logs/other.log")
    assert not m.excluded("logs/keep.log")
    assert m.dir_may_have_included("logs")


def test_conformance_dockerignore_file() -> None:
    m = IgnoreMatcher.from_text("skip\n**/*.log\n!logs/important.log\n.env\n")
    assert [p for p in ["README.md", "keep/k.txt", "logs/a.log", "logs/important.log",
                        "skip/s.txt", "skip/nested/n.txt", ".env", "Dockerfile",
                        ".dockerignore"] if not m.excluded(p)] == [
        "README.md", "keep/k.txt", "logs/important.log", "Dockerfile", ".dockerignore"]


def test_comments_blank_lines_bom_and_whitespace() -> None:
    m = IgnoreMatcher.from_text("\ufeff# comment\n\n  spaced  \r\n #notacomment\n! kept\n")
    assert m.excluded("spaced")
    assert m.excluded("#notacomment")  # only a leading # starts a comment
    assert not m.excluded("kept")
    assert not m.excluded("other")
    assert not m.excluded("# comment")


def test_root_never_excluded() -> None:
    m = IgnoreMatcher.from_text("*\n**\n")
    assert not m.excluded(".")
    assert not m.excluded("")


def test_dir_pruning_is_safe() -> None:
    m = IgnoreMatcher.from_text("build\n!build/keep/**\nvendor\n!*/docs\n")
    assert not m.dir_may_have_included("vendor/x")  # no exception can reach below vendor/x
    assert m.dir_may_have_included("build")
    assert m.dir_may_have_included("build/keep")
    assert not m.dir_may_have_included("build/other")
    assert m.dir_may_have_included("vendor")  # */docs could re-include vendor/docs
    assert m.dir_may_have_included("src")  # not excluded at all
    m2 = IgnoreMatcher.from_text("a\n!**/x\n")
    assert m2.dir_may_have_included("a/b/c")


def test_illegal_patterns() -> None:
    with pytest.raises(DockerfileError, match=r'\.dockerignore:2: illegal exclusion pattern'):
        IgnoreMatcher(["ok", "!"])
    with pytest.raises(DockerfileError, match=r"\.dockerignore:1: bad pattern"):
        IgnoreMatcher.from_text("[unterminated\n")


@pytest.mark.parametrize(("path", "want"), [
    ("", "."), ("a//b/", "a/b"), ("./a/./b", "a/b"), ("a/../..", ".."), ("//x", "/x"),
    ("/..", "/"),
])
def test_go_clean(path: str, want: str) -> None:
    assert go_clean(path) == want
