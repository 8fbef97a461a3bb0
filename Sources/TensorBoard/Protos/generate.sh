#!/usr/bin/env bash
# Regenerates ../Generated/event.pb.swift from event.proto. Needs protoc (Debian: protobuf-compiler) and
# protoc-gen-swift of the swift-protobuf version Package.swift names, built from that package:
#   git clone https://github.com/apple/swift-protobuf -b 1.39.0 /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && swift build --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/debug/protoc-gen-swift Sources/TensorBoard/Protos/generate.sh
# The generated file is committed: builds and CI never run protoc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
[ -x "$plugin" ] || { echo "generate.sh: protoc-gen-swift not found: set PROTOC_GEN_SWIFT (see the comment at the top)" >&2; exit 1; }
command -v protoc > /dev/null || { echo "generate.sh: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
# Internal visibility: the messages are an implementation detail of the TensorBoard module.
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$here" --swift_opt=Visibility=Internal \
       --swift_out="$here/../Generated" "$here/event.proto"
echo "wrote $here/../Generated/event.pb.swift"
