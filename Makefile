GO ?= go
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)

# Pinned code generators (make generate installs them into .tools/).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: test bench generate check-generated tools

# test: what CI runs (after .ci/run installs system packages).
test: check-generated
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# generate: lint the protos and regenerate grpcapi/gen.
generate: tools
	cd grpcapi && buf lint && buf generate

# check-generated fails when the committed generated code is stale.
check-generated: generate
	@git diff --exit-code --stat -- grpcapi/gen || { echo "grpcapi/gen is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- grpcapi/gen)" || { echo "grpcapi/gen has uncommitted files: run make generate and commit"; git status --porcelain -- grpcapi/gen; exit 1; }
