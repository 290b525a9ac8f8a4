package server

import (
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
)

// aheadReader reads whole files ahead of their next Open (osfs.FS.ReadAhead).
type aheadReader interface {
	ReadAhead(name string)
}

// getAhead reads a get's next chunks ahead of it (Config.ReadAhead): a get
// has one chunk read in flight at a time (client.Op), read off the node's
// event loop (core/node/replica readchunk.go), which with the chunk's file
// past the page cache (Config.LeaderDirect) would wait for the disk once
// per chunk. Asked ahead, the files are read while earlier chunks are sent
// out, and several at once; the node's read then copies the bytes from
// memory.
//
// It is a hint and nothing more: the read still goes through the core,
// ordered after the file's record was read, and the file system hands it
// the bytes read ahead only if they are still those of the file opened
// (osfs.FS.Open); otherwise the read reads the disk.
type getAhead struct {
	fs    aheadReader
	ahead int      // chunks to keep asked for ahead of the one read
	ids   []uint64 // the chunks of the get's range, in order
	names []string // their files here ("": the chunk is read elsewhere)
	asked int      // chunks [0, asked) were asked for
	at    int      // the chunk read last (its index)
}

// rangeChunks returns the chunks of f holding bytes of the range
// [off, off+length) (length < 0: to the end), in order.
func rangeChunks(f meta.File, off, length int64) []meta.ChunkRef {
	end := f.Size
	if length >= 0 {
		end = min(end, off+length)
	}
	base := f.InlineSize()
	var out []meta.ChunkRef
	for _, c := range f.Chunks {
		lo, hi := base, base+int64(c.Size)
		base = hi
		if hi > off && lo < end {
			out = append(out, c)
		}
	}
	return out
}

// startAhead returns the read-ahead of a get whose file record and range
// are known (client.StepFile), nil if the node reads none ahead or none of
// its chunks are read here. It asks the node, on its loop, which of the
// chunks its replicas lead and where their files are.
func (h *httpAPI) startAhead(f meta.File, off, length int64) *getAhead {
	if h.cfg.ReadAhead <= 0 || h.fs == nil || len(f.Chunks) == 0 {
		return nil
	}
	chunks := rangeChunks(f, off, length)
	if len(chunks) == 0 {
		return nil
	}
	g := &getAhead{fs: h.fs, ahead: h.cfg.ReadAhead, ids: make([]uint64, len(chunks)), names: make([]string, len(chunks))}
	led := false
	if !h.loop.inspect(func(n *node.Node) {
		for i, c := range chunks {
			g.ids[i] = c.ID
			if name, ok := n.LeaderChunkPath(c.Group, c.ID); ok {
				g.names[i], led = name, true
			}
		}
	}) || !led {
		return nil
	}
	g.fill(g.ahead)
	return g
}

// reading notes that the get sends the read of chunk id, and asks for the
// chunks up to ahead after it.
func (g *getAhead) reading(id uint64) {
	if g == nil {
		return
	}
	for i := g.at; i < len(g.ids); i++ {
		if g.ids[i] == id {
			g.at = i
			break
		}
	}
	g.fill(g.at + 1 + g.ahead)
}

// fill asks for the chunks not yet asked for before limit.
func (g *getAhead) fill(limit int) {
	for ; g.asked < min(limit, len(g.ids)); g.asked++ {
		if g.names[g.asked] != "" {
			g.fs.ReadAhead(g.names[g.asked])
		}
	}
}
