#!/usr/bin/env bash
# ONNX Runtime for the `onnxruntime` backend, without touching the system:
#  - the C API header, which no PyPI package ships, taken alone from Debian 13's
#    libonnxruntime-dev (unpacked from a private apt state; Debian 13's library
#    itself is never installed on Debian 12) into Sources/CONNXRuntime/vendor/;
#  - the library, libonnxruntime.so from the PyPI wheel `onnxruntime` that
#    requirements-test.txt installs into .venv (it needs only glibc 2.28).
# The header's ORT_API_VERSION (21) is what the backend asks the library for;
# a newer library answers older API versions. Prints the library's path.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor="Sources/CONNXRuntime/vendor"
if [ ! -f "$vendor/onnxruntime_c_api.h" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"/{debs,root,apt/lists/partial,apt/cache/archives/partial}
  mirror="$( (grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null; grep -h '^deb ' /etc/apt/sources.list 2>/dev/null) \
    | grep -m1 -oE "https?://[^ ]+/debian" || true)"
  echo "deb [trusted=yes] ${mirror:-http://deb.debian.org/debian} trixie main" > "$work/apt/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache" -o APT::Get::List-Cleanup=0
            -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download libonnxruntime-dev >/dev/null)
  dpkg-deb -x "$work"/debs/libonnxruntime-dev_*.deb "$work/root"
  mkdir -p "$vendor"
  cp "$work/root/usr/include/onnxruntime/onnxruntime_c_api.h" "$vendor/"
fi
grep -q '#define ORT_API_VERSION 21' "$vendor/onnxruntime_c_api.h" \
  || { echo "install-onnxruntime: $vendor/onnxruntime_c_api.h is not ORT API version 21" >&2; exit 1; }
library="$(ls "$PWD"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -1 || true)"
echo "${library:-none: install the onnxruntime wheel into .venv (scripts/setup.sh)}"
