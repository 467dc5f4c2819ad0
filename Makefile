GO ?= go
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)

# The Go release the project builds and tests with: the newest patch of
# its minor version, which fixes the standard library's known
# vulnerabilities (govulncheck, below). go.mod names it too, so builds
# with the default GOTOOLCHAIN=auto use it; the go command fetches it
# through the module proxy. GO_TOOLCHAIN=local keeps the machine's own.
GO_TOOLCHAIN ?= go1.26.11
export GOTOOLCHAIN := $(GO_TOOLCHAIN)

# govulncheck and its vulnerability database, pinned: the database is
# built from the golang.org/x/vulndb module (this workplace has no route
# to vuln.go.dev); bump VULNDB_VERSION to pick up new reports, or run
# make vulncheck VULNDB=https://vuln.go.dev where it is reachable.
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR          := $(TOOLS)/vulndb-$(VULNDB_VERSION)
VULNDB              ?= file://$(VULNDB_DIR)

# Pinned code generators (make generate installs them into .tools/).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: test bench generate check-generated tools vulncheck

# test: what CI runs (after .ci/run installs system packages).
test: check-generated vulncheck
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...

# vulncheck: known vulnerabilities reachable from the code, in the
# dependencies and the standard library; fails on any.
vulncheck: $(if $(filter file://%,$(VULNDB)),$(VULNDB_DIR)/index/db.json)
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db $(VULNDB) ./...

$(VULNDB_DIR)/index/db.json:
	mkdir -p $(TOOLS)
	cd $(TOOLS) && $(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(VULNDB_DIR)

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
