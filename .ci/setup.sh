#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need on a fresh Debian 12 machine (as root).
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  docker-registry skopeo buildah umoci podman busybox-static
  apache2-utils openssl git ca-certificates
  libseccomp2 uidmap fuse-overlayfs debootstrap time zstd gcc libc6-dev bubblewrap patchelf
  openssh-client qemu-user-static binfmt-support
  python3 python3-venv python3-pip nodejs npm
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere on some machines; only ask apt for it when there is none.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Multi-platform builds run foreign RUN steps through qemu-user-static; binfmt-support registers
# the handlers with the F flag. Where binfmt_misc is not mounted (containers), mount and enable it.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
# The arm64 busybox-static for the multi-platform test's base index (tests only).
ARM64_BUSYBOX=/opt/trustbuild-fixtures/busybox-arm64
if [ ! -x "$ARM64_BUSYBOX/bin/busybox" ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1)
  mkdir -p "$ARM64_BUSYBOX"
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$ARM64_BUSYBOX"
  rm -rf "$tmp"
fi
# The Debian package starts a registry on :5000 as a service; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# sigstore-js, the independent verifier of trustbuild's Sigstore bundles (tests only).
if [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules ]; then
  (cd tests/js && npm install --no-audit --no-fund --silent >/dev/null)
fi

# Azurite, the Azure Blob emulator for the remote build context tests (tests only).
if [ -f tests/emulators/package.json ] && [ ! -x tests/emulators/node_modules/.bin/azurite-blob ]; then
  (cd tests/emulators && npm install --no-audit --no-fund --silent >/dev/null)
fi
