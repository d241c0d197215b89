#!/usr/bin/env bash
# The demo: make a tiny busybox image locally (plain Python, docker-archive format), copy it into
# an OCI layout with trustbuild, inspect it, check skopeo and umoci read what trustbuild wrote,
# and copy it back out to a docker-archive (config digest and diff_ids kept).
set -euo pipefail
cd "$(dirname "$0")/.."
TB=.venv/bin/trustbuild
out=.demo
rm -rf "$out"; mkdir -p "$out"
step() { printf '\n== %s\n' "$*" >&2; }

step "make a busybox docker-archive with plain Python (examples/make_busybox_archive.py)"
.venv/bin/python examples/make_busybox_archive.py "$out/busybox.tar"

step "trustbuild copy docker-archive:$out/busybox.tar oci:$out/layout:busybox"
digest=$($TB copy "docker-archive:$out/busybox.tar" "oci:$out/layout:busybox")
echo "$digest"

step "trustbuild inspect oci:$out/layout:busybox"
$TB inspect "oci:$out/layout:busybox"

if command -v skopeo >/dev/null; then
  step "skopeo reads the same digest from the layout"
  seen=$(skopeo inspect --raw "oci:$out/layout:busybox" | sha256sum | cut -d' ' -f1)
  echo "skopeo: sha256:$seen"
  [ "sha256:$seen" = "$digest" ] || { echo "demo: digest mismatch" >&2; exit 1; }
fi
if command -v umoci >/dev/null; then
  step "umoci unpacks it; busybox runs from the unpacked rootfs"
  umoci unpack --image "$out/layout:busybox" "$out/bundle" >/dev/null
  ls -l "$out/bundle/rootfs/bin/busybox" "$out/bundle/rootfs/bin/sh"
  if [ "$(id -u)" = 0 ]; then chroot "$out/bundle/rootfs" /bin/sh -c 'echo "hello from $(uname -s) busybox"'; fi
fi

step "trustbuild copy oci:$out/layout:busybox docker-archive:$out/roundtrip.tar:busybox:roundtrip"
$TB copy -q "oci:$out/layout:busybox" "docker-archive:$out/roundtrip.tar:busybox:roundtrip" >/dev/null
$TB inspect --no-tags "docker-archive:$out/roundtrip.tar" \
  | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); print("config", d["configDigest"]); print("diff_ids", d["config"]["rootfs"]["diff_ids"])'
