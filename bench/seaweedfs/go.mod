module github.com/tessera-db/tessera/bench/seaweedfs

go 1.26.8
