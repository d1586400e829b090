#!/usr/bin/env bash
# Installs the system packages Tote builds and runs with (Debian 12), only if missing.
# Idempotent; safe to run on every build. Needs root (or sudo) the first time.
set -euo pipefail
# procps (pgrep), bsdutils (script) and gdb serve tools/run-with-deadline.sh, which reports a hung test.
packages=(liblmdb-dev lmdb-utils libpq-dev postgresql libprotobuf-c-dev protobuf-c-compiler protobuf-compiler pkg-config gcc make procps bsdutils gdb)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
  echo "setup: swift not found on PATH (Swift 6.2 or newer is required; on this machine kind it is /opt/swift/usr/bin)" >&2
  exit 2
fi
echo "setup: system packages present; $(swift --version 2>/dev/null | head -n 1)"
