#!/usr/bin/env bash
# Regenerates Sources/TritonProto from Protos/*.proto and Sources/TEIProto
# from Protos/tei/tei.proto. Run after editing a
# .proto; the generated Swift is committed so ordinary builds need neither
# protoc nor the plugin. Needs Debian's protobuf-compiler; builds
# protoc-gen-swift from the same swift-protobuf version the package uses.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${PROTOC_GEN_SWIFT_DIR:-/tmp/batchserver-protoc-gen-swift}"
command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
if [ ! -x "$work/.build/release/protoc-gen-swift" ]; then
  rm -rf "$work"
  git clone -q https://github.com/apple/swift-protobuf "$work"
  git -C "$work" checkout -q 1.39.0
  (cd "$work" && swift build -c release --product protoc-gen-swift)
fi
protoc --plugin="protoc-gen-swift=$work/.build/release/protoc-gen-swift" \
  --swift_opt=Visibility=Public --swift_out="$root/Sources/TritonProto" \
  -I "$root/Protos" $(cd "$root/Protos" && ls *.proto)
protoc --plugin="protoc-gen-swift=$work/.build/release/protoc-gen-swift" \
  --swift_opt=Visibility=Public --swift_out="$root/Sources/TEIProto" \
  -I "$root/Protos/tei" tei.proto
