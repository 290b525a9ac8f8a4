# tessera: see README.md. Every target works on a fresh machine after .ci/run's installs.
GO        ?= go
SEED      ?=
SEEDS     ?= 1..300
JOBS      ?= 2
BIN       := bin/tessera

.PHONY: all build test sim swarm specs vet fuzz bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/tessera

# The README's test command: unit, property, fuzz-seed, simulator and
# multi-process integration tests, plus the injected-bug self-test of the
# simulator (built with the tesserabugs tag).
test: vet
	$(GO) test -count=1 -timeout 40m ./...
	$(GO) test -count=1 -timeout 30m -tags tesserabugs -run 'TestInjectedBugs' ./sim/

vet:
	$(GO) vet ./...
	$(GO) vet -tags tesserabugs ./...

# One simulation on the embedded defaults; a random seed unless SEED is given.
sim: build
	@seed="$(SEED)"; if [ -z "$$seed" ]; then seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); fi; \
	./$(BIN) sim run --seed $$seed

swarm: build
	./$(BIN) sim swarm --seeds $(SEEDS) -j $(JOBS)

specs:
	$(GO) run ./specs/cmd/specs

fuzz:
	$(GO) test ./core/wal -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 30s
	$(GO) test ./core/fspath -run '^$$' -fuzz FuzzValidate -fuzztime 30s

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./sim/

clean:
	rm -rf bin
