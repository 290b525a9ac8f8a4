module github.com/tessera-db/tessera/bench/seaweedfs

go 1.26.8

require github.com/tessera-db/tessera/bench/loadgen v0.0.0

replace github.com/tessera-db/tessera/bench/loadgen => ../loadgen
