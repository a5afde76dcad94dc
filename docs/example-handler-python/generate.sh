#!/bin/sh
# Regenerates the Python gRPC modules in lib/ from the .proto files.
# Needs Debian's protobuf-compiler (protoc 3.21, the same release as the
# python3-protobuf runtime) and python3-grpc-tools (for the gRPC stubs).
set -eu
cd "$(dirname "$0")"
SESSION_PROTO=../../shared/proto
rm -f lib/*_pb2.py lib/*_pb2_grpc.py
protoc -I "$SESSION_PROTO" -I proto --python_out=lib \
	session.proto health.proto grpc_controller.proto
/usr/bin/python3 -m grpc_tools.protoc -I "$SESSION_PROTO" -I proto --grpc_python_out=lib \
	session.proto health.proto grpc_controller.proto
