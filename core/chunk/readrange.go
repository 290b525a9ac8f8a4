package chunk

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/vfs"
)

// Reading a byte range of a chunk. A chunk's crc32c covers it whole, so
// every read passes over the whole file to verify it, however small its
// range: serving a byte of rotten file unverified would hand a client bad
// data as good. What a small range spares is memory: a range read not
// given a buffer for the whole file (FileRead.ReadRange) streams the file through a
// block-sized buffer, keeping only the range's bytes, so that a read of a
// few kilobytes of a 4 MiB chunk does not hold 4 MiB while it is in
// flight.

// rangeBlockBytes is the size of the blocks a range read streams a chunk's
// file through (streamRange).
const rangeBlockBytes = 64 << 10

// readRange returns length bytes of chunk in from offset (length 0: to
// its end), verified as the whole chunk's, reading into buf if it holds the
// chunk's whole file (the bytes returned then lie in buf). It reads only
// the chunk's file, so it may run off the event loop that owns the store.
func (s *Store) readRange(in Info, offset, length uint32, buf []byte) ([]byte, error) {
	if offset > in.Size {
		return nil, fmt.Errorf("chunk: %d: offset %d beyond size %d", in.ID, offset, in.Size)
	}
	end := in.Size
	if length > 0 && offset+length < end {
		end = offset + length
		if bugs.CompiledIn && s.bugs.RangeEndIsLength {
			end = length
		}
	}
	if int64(cap(buf)) < FileBytes(in) && int64(end-offset)+int64(s.streamBlock) < int64(in.Size) {
		return s.streamRange(in, offset, end)
	}
	if int64(cap(buf)) < FileBytes(in) {
		buf = nil
	}
	data, err := s.readInto(s.name(in.ID), in, buf)
	if err != nil {
		return nil, err
	}
	return data[offset:end], nil
}

// streamRange is readRange for a range well short of the chunk, read into
// no buffer of the caller's: the file goes through one block-sized buffer
// while its checksum is taken, and only the range's bytes are kept.
func (s *Store) streamRange(in Info, offset, end uint32) ([]byte, error) {
	f, err := s.fs.Open(s.name(in.ID))
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil, ErrMissing
		}
		return nil, fmt.Errorf("chunk: open %d: %w", in.ID, err)
	}
	defer f.Close()
	block := make([]byte, min(s.streamBlock, headerBytes+int(in.Size)))
	out := make([]byte, 0, end-offset)
	crc := uint32(0)
	for at := int64(0); at < FileBytes(in); {
		b := block[:min(int64(len(block)), FileBytes(in)-at)]
		n, err := f.ReadAt(b, at)
		if n < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("chunk: read %d: short file (%d bytes): %w", in.ID, at+int64(n), ErrCorrupt)
			}
			return nil, fmt.Errorf("chunk: read %d: after %d bytes: %w (%w)", in.ID, at+int64(n), ErrCorrupt, err)
		}
		if at == 0 {
			if err := checkHeader(b[:headerBytes], in); err != nil {
				return nil, err
			}
		}
		// The data's bytes this block holds, and where they lie in the
		// chunk.
		data, from := b, at-headerBytes
		if at == 0 {
			data, from = b[headerBytes:], 0
		}
		crc = crc32.Update(crc, Castagnoli, data)
		lo, hi := max(int64(offset), from), min(int64(end), from+int64(len(data)))
		if lo < hi {
			out = append(out, data[lo-from:hi-from]...)
		}
		at += int64(len(b))
	}
	if crc != in.CRC {
		return nil, fmt.Errorf("chunk: %d: %w", in.ID, ErrCorrupt)
	}
	return out, nil
}
