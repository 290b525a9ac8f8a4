# tessera: see README.md. Every target works on a fresh machine after .ci/run's installs.
GO        ?= go
SEED      ?=
SEEDS     ?= 1..300
JOBS      ?= 2
BIN       := bin/tessera

.PHONY: all build test sim swarm chaos specs vet lint fuzz bench bench-compare bench-seaweed pgo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/tessera

# The README's test command: unit, property, fuzz-seed, simulator and
# multi-process integration tests, plus the injected-bug self-tests of the
# simulator, of core/node's step-by-step harness, of the chaos harness and
# of the server's power-loss test (built with the tesserabugs tag).
test: vet
	$(GO) test -count=1 -timeout 40m ./...
	$(GO) test -count=1 -timeout 30m -tags tesserabugs -run 'TestInjectedBugs|TestInjectedServerBugs|TestShrinkKeepsTheFailure|TestPowerLossCatchesInjectedBugs' ./sim/ ./core/node/ ./chaos/ ./server/

vet:
	$(GO) vet ./...
	$(GO) vet -tags tesserabugs ./...

# staticcheck (honnef.co/go/tools), with and without the injected bugs'
# build tag; .ci/run installs it (STATICCHECK names another binary).
STATICCHECK ?= staticcheck
lint:
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags tesserabugs ./...

# One simulation on the embedded defaults; a random seed unless SEED is given.
sim: build
	@seed="$(SEED)"; if [ -z "$$seed" ]; then seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); fi; \
	./$(BIN) sim run --seed $$seed

swarm: build
	./$(BIN) sim swarm --seeds $(SEEDS) -j $(JOBS)

# The profile the binary is built with (Go's profile-guided optimisation
# reads cmd/tessera/default.pgo): a swarm of the simulator, whose speed it
# serves (docs/performance.md). Seeds apart from those the docs measure.
PGO_SEEDS ?= 1001..1040
pgo: build
	./$(BIN) sim swarm --seeds $(PGO_SEEDS) -j 1 --cpuprofile cmd/tessera/default.pgo.new
	mv cmd/tessera/default.pgo.new cmd/tessera/default.pgo

# A chaos run of real node processes under a nemesis (docs/chaos.md).
CHAOS_DURATION ?= 30s
CHAOS_ARGS ?=
chaos: build
	./$(BIN) chaos run --nodes 4 --lose --duration $(CHAOS_DURATION) $(CHAOS_ARGS)

specs:
	$(GO) run ./specs/cmd/specs

# Each fuzz target for FUZZTIME; their seed corpora also run under `make test`.
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./core/wal -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./core/fspath -run '^$$' -fuzz FuzzValidate -fuzztime $(FUZZTIME)
	$(GO) test ./core/meta -run '^$$' -fuzz FuzzUnmarshalCommand -fuzztime $(FUZZTIME)
	$(GO) test ./core/meta -run '^$$' -fuzz FuzzRestore -fuzztime $(FUZZTIME)
	$(GO) test ./core/api -run '^$$' -fuzz FuzzUnmarshalRequest -fuzztime $(FUZZTIME)
	$(GO) test ./core/api -run '^$$' -fuzz FuzzUnmarshalResponse -fuzztime $(FUZZTIME)
	$(GO) test ./core/wire -run '^$$' -fuzz FuzzUnmarshal -fuzztime $(FUZZTIME)

# Simulation speed (docs/performance.md); `tessera bench put-get` measures a cluster.
bench: build
	$(GO) test -run '^$$' -bench BenchmarkRun -benchtime 20x ./sim/

# tessera beside etcd v3.6 and dd on this machine: the tables of
# docs/performance.md (bench/compare.sh; BENCH_DURATION, BENCH_ROUNDS, ...).
bench-compare:
	bash bench/compare.sh

# tessera beside SeaweedFS (its defaults, and fsync on every put) and dd:
# docs/performance.md. Builds weed from the Go module proxy the first time
# (bench/seaweedfs/weed; BENCH_WEED=path reuses a binary). Ports 17600-17634.
bench-seaweed:
	BENCH_SEAWEED=1 BENCH_ETCD=0 BENCH_TESSERA_PORT=$${BENCH_TESSERA_PORT:-17600} \
		BENCH_TESSERA_PEER_PORT=$${BENCH_TESSERA_PEER_PORT:-17610} bash bench/compare.sh

clean:
	rm -rf bin
