#!/usr/bin/env bash
# The demo: make a tiny image locally, copy it into an OCI layout with trustbuild, inspect it.
set -euo pipefail
cd "$(dirname "$0")/.."
TB=.venv/bin/trustbuild
out=.demo
rm -rf "$out"; mkdir -p "$out"
.venv/bin/python examples/make_busybox_archive.py "$out/busybox.tar"
echo "== trustbuild copy docker-archive:$out/busybox.tar oci:$out/layout:busybox" >&2
$TB copy "docker-archive:$out/busybox.tar" "oci:$out/layout:busybox"
echo "== trustbuild inspect oci:$out/layout:busybox" >&2
$TB inspect "oci:$out/layout:busybox"
