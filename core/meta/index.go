package meta

import "github.com/google/btree"

// fileIndex holds the files by path, in byte order, in a copy-on-write
// B-tree. A sorted slice of paths beside a map cost a move of half the
// index on every new path (a put of a new file, the common case, moved
// hundreds of kilobytes once the state held tens of thousands of files);
// the tree inserts in O(log n). And freeze makes a read-only view in O(1):
// the tree's nodes are shared and copied only when a later write touches
// them, so a snapshot can be encoded off the event loop while the state
// goes on applying (Frozen).
type fileIndex struct {
	t *btree.BTreeG[File]
}

// indexDegree is the B-tree's degree: nodes hold up to 2*degree-1 files.
const indexDegree = 32

func lessPath(a, b File) bool { return a.Path < b.Path }

func newFileIndex() fileIndex {
	return fileIndex{t: btree.NewG(indexDegree, lessPath)}
}

// get returns the file at path.
func (x fileIndex) get(path string) (File, bool) { return x.t.Get(File{Path: path}) }

// set adds or replaces the file at f.Path. The File stored must never be
// changed in place afterwards (a frozen view may share it): a write
// replaces it with a new value.
func (x fileIndex) set(f File) { x.t.ReplaceOrInsert(f) }

// remove deletes the file at path, reporting whether it was there.
func (x fileIndex) remove(path string) bool {
	_, ok := x.t.Delete(File{Path: path})
	return ok
}

func (x fileIndex) len() int { return x.t.Len() }

// ascend calls fn for each file in path order, from the first at or above
// from, until fn returns false.
func (x fileIndex) ascend(from string, fn func(File) bool) {
	x.t.AscendGreaterOrEqual(File{Path: from}, fn)
}

// freeze returns a view of the index as it is now that later writes to x
// do not change; the view and x may then be used from different
// goroutines, the view read-only.
func (x fileIndex) freeze() fileIndex { return fileIndex{t: x.t.Clone()} }
