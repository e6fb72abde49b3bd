# The whole test suite is `make test`; .ci/run calls it after installing
# what a fresh machine lacks.

GO ?= go
NODE_DEPS := interop/node/node_modules/.package-lock.json

.PHONY: test chat bench fuzz fmt-check vet node-deps

## test: format check, vet, every test with the race detector (real Node
## and Chromium clients included), and the bench module's tests.
test: fmt-check vet node-deps
	$(GO) test -race -count=1 ./...
	# Allocation counts, which the race detector distorts.
	$(GO) test -count=1 -run 'Alloc' ./handler/...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 -run . -bench . -benchtime 1x ./...

## chat: run the example chat on http://localhost:8080.
chat:
	$(GO) run ./examples/chat

## bench: the benchmarks quoted in BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./handler/...
	cd bench && $(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: every fuzz target for FUZZTIME each (default 20s).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## node-deps: install the pinned npm packages the interop tests drive.
node-deps: $(NODE_DEPS)

$(NODE_DEPS): interop/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix interop/node --no-audit --no-fund; \
	else \
	  echo "npm not found: the Node interop tests will skip (install Node.js >= 20)"; \
	fi
