package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestStartProfile checks --cpuprofile's helper: a profile is written
// (gzipped, as runtime/pprof writes it and go tool pprof and the Go
// compiler's -pgo read it) once stopProfile runs; no path profiles
// nothing; a path that cannot be created is an error.
func TestStartProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	if err := startProfile(path); err != nil {
		t.Fatal(err)
	}
	stopProfile()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile of %d bytes is not gzipped", len(b))
	}
	stopProfile() // a second stop does nothing

	if err := startProfile(""); err != nil {
		t.Fatal(err)
	}
	stopProfile()
	if err := startProfile(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		stopProfile()
		t.Fatal("a profile in a missing directory: no error")
	}
}
