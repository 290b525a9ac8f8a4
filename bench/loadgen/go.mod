module github.com/tessera-db/tessera/bench/loadgen

go 1.26.8
