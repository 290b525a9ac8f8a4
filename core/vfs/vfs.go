// Package vfs is the file-system interface the core persists through.
//
// The core never touches os files directly: the production runtime hands it a
// real directory (server/osfs) and the simulator a memory file system that
// keeps what is durable apart from what is only written (vfs/memfs), so that a
// simulated crash loses unsynced writes. The shape follows pebble's vfs.
//
// Durability rules, which both implementations honour and the simulator
// punishes: bytes written to a file are durable only after File.Sync; the
// existence of a file created, renamed or removed in a directory is durable
// only after SyncDir on that directory.
package vfs

import (
	"errors"
	"io"
)

// ErrNotExist is returned (possibly wrapped) when a named file does not exist.
var ErrNotExist = errors.New("vfs: file does not exist")

// ErrNoSpace is returned (possibly wrapped) when a write finds the disk full.
var ErrNoSpace = errors.New("vfs: no space left on device")

// FS is a hierarchical file system with slash-separated names.
type FS interface {
	// Create creates (or truncates) the named file for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing; ErrNotExist if absent.
	Open(name string) (File, error)
	// Remove removes a file; ErrNotExist if absent.
	Remove(name string) error
	// Rename atomically renames oldname to newname, replacing newname.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents; directories are durable at once.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	// A missing directory lists as empty.
	List(dir string) ([]string, error)
	// SyncDir makes creations, renames and removals in dir durable.
	SyncDir(dir string) error
}

// File is an open file. Write appends at the end of the file.
type File interface {
	io.Writer
	io.ReaderAt
	io.Closer
	// Sync makes every byte written so far durable.
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Size returns the current size of the file in bytes.
	Size() (int64, error)
}

// Stater is implemented by an FS that can tell a file's size without
// opening it. Checks of whether a file is present and whole (a chunk
// store's Missing, run over every chunk it holds) use it where they can:
// an open and close per file costs a descriptor and, in the simulator, a
// tracked handle each.
type Stater interface {
	// Stat returns the named file's current size; ErrNotExist (possibly
	// wrapped) if absent.
	Stat(name string) (int64, error)
}

// DirectWriter is implemented by an FS that can write a whole new file past
// the operating system's page cache (O_DIRECT on Linux): the bytes go from
// memory to the disk without being copied into cached pages, which costs
// far less CPU, and are not kept cached. It suits files written once and
// seldom read soon after, such as a follower's copy of a chunk. An FS
// without it (the simulator's) is written through Create as usual.
type DirectWriter interface {
	// WriteDirect creates (or truncates) the named file, writes the
	// concatenation of parts to it and makes those bytes durable, as
	// Create, Write of each part and Sync would: the file's existence
	// needs SyncDir as usual. A failed or interrupted call may leave a
	// file holding any prefix of the bytes, or more bytes than given
	// (padding a crash did not trim), never other bytes in their place.
	WriteDirect(name string, parts ...[]byte) error
}
