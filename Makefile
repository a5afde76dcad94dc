# tina4go/sessions
#   make run    build and run the reference server on the file handler (127.0.0.1:7145)
#   make test   gofmt + go vet + every test with the race detector
#               (needs Go, and redis-server + redis-cli on PATH for the Redis handler's tests)
#   make build  bin/tina4-host and every handler binary in bin/plugins/
#   make bench  the benchmarks
#   make proto  regenerate shared/proto from session.proto (needs protoc)

GO       ?= go
BIN      := bin
PLUGINS  := $(BIN)/plugins
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1

.PHONY: build run test bench proto fmt vet clean redis-tools example-tools

build:
	$(GO) build -o $(BIN)/tina4-host ./host/cmd/tina4-host
	$(GO) build -o $(PLUGINS)/SessionFileHandler ./plugins/file/cmd/SessionFileHandler
	$(GO) build -o $(PLUGINS)/SessionRedisHandler ./plugins/redis/cmd/SessionRedisHandler
	chmod 0755 $(PLUGINS) && chmod go-w $(PLUGINS)/*  # the loader refuses group/world-writable plugins

run: build
	./$(BIN)/tina4-host serve

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench/ is a module of its own that no test builds: vet compiles it (and its
# tests), so a change that breaks `make bench` fails here.
vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...

test: fmt vet redis-tools example-tools
	umask 022; $(GO) test -race -count=1 -timeout 30m ./...

# The Redis tests start their own redis-server instances; they never skip.
redis-tools:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
	  echo "redis-server/redis-cli not found: installing Debian's redis-server"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y redis-server >/dev/null || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }; \
	  else sudo apt-get install -y redis-server >/dev/null; fi; }

# The handlers in other languages (docs/example-handler-python, -node) are
# tested end to end: they need Debian's Python gRPC for /usr/bin/python3, and
# Node.js 20+ with npm (the Node test runs `npm ci` itself). They never skip.
PY_DEBS := python3 python3-grpcio python3-protobuf python3-cryptography
example-tools:
	@/usr/bin/python3 -c 'import grpc, google.protobuf, cryptography' 2>/dev/null || { \
	  echo "Python gRPC for /usr/bin/python3 not found: installing Debian's $(PY_DEBS)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y $(PY_DEBS) >/dev/null || { apt-get update >/dev/null && apt-get install -y $(PY_DEBS) >/dev/null; }; \
	  else sudo apt-get install -y $(PY_DEBS) >/dev/null; fi; }
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "node/npm not found: installing Debian's nodejs npm"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y nodejs npm >/dev/null || { apt-get update >/dev/null && apt-get install -y nodejs npm >/dev/null; }; \
	  else sudo apt-get install -y nodejs npm >/dev/null; fi; }

bench:
	umask 022; cd bench && $(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m .

proto:
	mkdir -p $(BIN)/protoc-plugins
	GOBIN=$(abspath $(BIN)/protoc-plugins) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(abspath $(BIN)/protoc-plugins) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(abspath $(BIN)/protoc-plugins):$$PATH protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative shared/proto/session.proto

clean:
	rm -rf $(BIN)
