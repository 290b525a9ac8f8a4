package memfs

import (
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/vfs"
)

// content returns a file's bytes, and checks that Stat tells its size (or
// its absence) as an Open does.
func content(t *testing.T, fs *FS, name string) (string, bool) {
	t.Helper()
	size, serr := fs.Stat(name)
	f, err := fs.Open(name)
	if errors.Is(err, vfs.ErrNotExist) {
		if !errors.Is(serr, vfs.ErrNotExist) {
			t.Fatalf("Stat(%s) = %d, %v of a file Open does not find", name, size, serr)
		}
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, _ := f.Size()
	if serr != nil || size != n {
		t.Fatalf("Stat(%s) = %d, %v; the open file's size is %d", name, size, serr, n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return string(b), true
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// created creates name with data written and not synced.
func created(t *testing.T, fs *FS, name, data string) vfs.File {
	t.Helper()
	f, err := fs.Create(name)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	return f
}

func TestCrash(t *testing.T) {
	tests := []struct {
		name   string
		run    func(t *testing.T, fs *FS)
		cut    func(int) int
		file   string
		want   string
		exists bool
	}{
		{"synced write and dir survive", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("hello"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
		}, nil, "d/a", "hello", true},
		{"unsynced write is lost", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("hello"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			f.Write([]byte(" world"))
		}, nil, "d/a", "hello", true},
		{"torn write keeps a prefix", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("hello"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			f.Write([]byte(" world"))
		}, func(n int) int { return 3 }, "d/a", "hello wo", true},
		{"file never dir-synced vanishes", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("hello"))
			must(t, f.Sync())
		}, nil, "d/a", "", false},
		{"unsynced remove is undone", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("x"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			must(t, fs.Remove("d/a"))
		}, nil, "d/a", "x", true},
		{"synced remove sticks", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			must(t, fs.Remove("d/a"))
			must(t, fs.SyncDir("d"))
		}, nil, "d/a", "", false},
		{"unsynced rename is undone", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("x"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			must(t, fs.Rename("d/a", "d/b"))
		}, nil, "d/b", "", false},
		{"synced rename moves the inode", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("x"))
			must(t, f.Sync())
			must(t, fs.Rename("d/a", "d/b"))
			must(t, fs.SyncDir("d"))
			f.Write([]byte("y")) // the handle still writes to the moved inode
			must(t, f.Sync())
		}, nil, "d/b", "xy", true},
		{"a remove after a crash is durable at the next dir sync", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			fs.Crash(nil)
			must(t, fs.Remove("d/a"))
			must(t, fs.SyncDir("d"))
		}, nil, "d/a", "", false},
		{"a dir sync keeps names changed before an earlier one", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("x"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			g, _ := fs.Create("d/b")
			must(t, g.Sync())
			must(t, fs.SyncDir("d"))
		}, nil, "d/a", "x", true},
		{"a rename across directories is durable where synced", func(t *testing.T, fs *FS) {
			must(t, fs.MkdirAll("e"))
			f, _ := fs.Create("d/a")
			f.Write([]byte("x"))
			must(t, f.Sync())
			must(t, fs.Rename("d/a", "e/b"))
			must(t, fs.SyncDir("e"))
		}, nil, "e/b", "x", true},
		{"truncate is undone without sync", func(t *testing.T, fs *FS) {
			f, _ := fs.Create("d/a")
			f.Write([]byte("abcdef"))
			must(t, f.Sync())
			must(t, fs.SyncDir("d"))
			must(t, f.Truncate(2))
		}, func(n int) int { return n }, "d/a", "abcdef", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := New()
			must(t, fs.MkdirAll("d"))
			tt.run(t, fs)
			fs.Crash(tt.cut)
			got, ok := content(t, fs, tt.file)
			if ok != tt.exists || got != tt.want {
				t.Fatalf("after crash %s = %q (exists %v), want %q (exists %v)", tt.file, got, ok, tt.want, tt.exists)
			}
		})
	}
}

func TestHandlesDieWithCrash(t *testing.T) {
	fs := New()
	f, _ := fs.Create("a")
	fs.Crash(nil)
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after crash: %v", err)
	}
}

func TestFaults(t *testing.T) {
	fs := New()
	boom := errors.New("boom")
	f, _ := fs.Create("a")
	f.Write([]byte("abc"))
	fs.SetFaults(Faults{
		WriteErr:    func(string) error { return boom },
		SyncErr:     func(string) error { return boom },
		ReadCorrupt: func(_ string, p []byte) { p[0] ^= 1 },
	})
	if _, err := f.Write([]byte("d")); !errors.Is(err, boom) {
		t.Fatalf("write: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, boom) {
		t.Fatalf("sync: %v", err)
	}
	if _, err := fs.Create("b"); !errors.Is(err, boom) {
		t.Fatalf("create: %v", err)
	}
	b := make([]byte, 3)
	f.ReadAt(b, 0)
	if string(b) != "`bc" {
		t.Fatalf("read corruption not applied: %q", b)
	}
	if got, err := fs.Contents("a"); err != nil || string(got) != "abc" {
		t.Fatalf("Contents = %q, %v: want the stored bytes, without read faults", got, err)
	}
	if _, err := fs.Contents("zz"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("Contents of a missing file: %v", err)
	}
	fs.SetFaults(Faults{OpenErr: func(string) error { return boom }, ListErr: func(string) error { return boom }})
	if _, err := fs.List(""); !errors.Is(err, boom) {
		t.Fatalf("list of a directory that exists: %v, want the injected error", err)
	}
	if names, err := fs.List("nodir"); err != nil || names != nil {
		t.Fatalf("list of a missing directory: %v, %v, want nothing", names, err)
	}
	if _, err := fs.Open("a"); !errors.Is(err, boom) || errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("open of a file that exists: %v, want the injected error alone", err)
	}
	if _, err := fs.Open("zz"); !errors.Is(err, vfs.ErrNotExist) || errors.Is(err, boom) {
		t.Fatalf("open of a missing file: %v, want ErrNotExist alone", err)
	}
	fs.SetFaults(Faults{})
	if got, _ := content(t, fs, "a"); got != "abc" {
		t.Fatalf("stored bytes changed by a read fault: %q", got)
	}
	fs.Crash(nil)
	if _, ok := content(t, fs, "a"); ok {
		t.Fatal("failed sync made a file durable")
	}
}

func TestCorruptAtRestSurvivesCrash(t *testing.T) {
	fs := New()
	f, _ := fs.Create("a")
	f.Write([]byte("abc"))
	must(t, f.Sync())
	must(t, fs.SyncDir(""))
	must(t, fs.CorruptAtRest("a", 1, 0x20))
	if got, _ := content(t, fs, "a"); got != "aBc" {
		t.Fatalf("got %q", got)
	}
	fs.Crash(nil)
	if got, _ := content(t, fs, "a"); got != "aBc" {
		t.Fatalf("after crash got %q", got)
	}
	if err := fs.CorruptAtRest("a", 9, 1); err == nil {
		t.Fatal("corrupt past the end accepted")
	}
}

func TestLoseAndTruncateAtRestSurviveCrash(t *testing.T) {
	fs := New()
	for _, name := range []string{"a", "b"} {
		f, _ := fs.Create(name)
		f.Write([]byte("abcdef"))
		must(t, f.Sync())
	}
	must(t, fs.SyncDir(""))
	must(t, fs.LoseAtRest("a"))
	must(t, fs.TruncateAtRest("b", 2))
	check := func(when string) {
		t.Helper()
		if _, err := fs.Open("a"); err == nil {
			t.Fatalf("%s: a lost at rest still opens", when)
		}
		if got, _ := content(t, fs, "b"); got != "ab" {
			t.Fatalf("%s: b is %q, want %q", when, got, "ab")
		}
		if !fs.Durable("b") {
			t.Fatalf("%s: b cut at rest is not durable as it reads", when)
		}
	}
	check("at once")
	fs.Crash(nil)
	check("after a crash")
	if err := fs.TruncateAtRest("b", 3); err == nil {
		t.Fatal("truncate past the end accepted")
	}
	if err := fs.LoseAtRest("a"); err == nil {
		t.Fatal("lost a file twice")
	}
}

func TestListAndDirs(t *testing.T) {
	fs := New()
	must(t, fs.MkdirAll("g/1/wal"))
	must(t, fs.MkdirAll("g/1/chunks"))
	fs.Create("g/1/wal/b")
	fs.Create("g/1/wal/a")
	if got, _ := fs.List("g/1/wal"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("List = %v", got)
	}
	if got, _ := fs.List("g/1"); !slices.Equal(got, []string{"chunks", "wal"}) {
		t.Fatalf("List dirs = %v", got)
	}
	if got, err := fs.List("nope"); err != nil || len(got) != 0 {
		t.Fatalf("missing dir: %v %v", got, err)
	}
	if _, err := fs.Create("nodir/x"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("create in a missing dir: %v", err)
	}
	if _, err := fs.Open("g/1/wal/zz"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
}

// TestPlacement writes "1111", "2222" and "3333" to a file, syncing after
// each, with the second sync placed by the test: the process reads back
// what it wrote until a crash, and what the medium held after it.
func TestPlacement(t *testing.T) {
	tests := []struct {
		name      string
		pl        Placement
		want      string // file a after the crash
		wantOther string // file b ("bbbbbbbb" synced) after the crash
	}{
		{"where it belongs", Placement{}, "111122223333", "bbbbbbbb"},
		{"lost", Placement{Lost: true}, "1111\x00\x00\x00\x003333", "bbbbbbbb"},
		{"misdirected to another file", Placement{To: "b", At: 2}, "1111\x00\x00\x00\x003333", "bb2222bb"},
		{"misdirected past another file's end", Placement{To: "b", At: 6}, "1111\x00\x00\x00\x003333", "bbbbbb22"},
		{"misdirected within the file", Placement{To: "a", At: 1}, "12222\x00\x00\x003333", "bbbbbbbb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := New()
			b, _ := fs.Create("b")
			b.Write([]byte("bbbbbbbb"))
			must(t, b.Sync())
			f, _ := fs.Create("a")
			must(t, fs.SyncDir(""))
			syncs := 0
			fs.SetFaults(Faults{Place: func(name string, off int64, p []byte) Placement {
				if name != "a" {
					return Placement{}
				}
				syncs++
				if syncs != 2 {
					return Placement{}
				}
				if off != 4 || string(p) != "2222" {
					t.Errorf("placing %q at %d, want \"2222\" at 4", p, off)
				}
				return tt.pl
			}})
			for _, s := range []string{"1111", "2222", "3333"} {
				f.Write([]byte(s))
				must(t, f.Sync())
			}
			if got, _ := content(t, fs, "a"); got != "111122223333" {
				t.Fatalf("before the crash a reads %q", got)
			}
			fs.Crash(func(int) int { t.Fatal("nothing unsynced to tear"); return 0 })
			if got, _ := content(t, fs, "a"); got != tt.want {
				t.Errorf("a = %q, want %q", got, tt.want)
			}
			if got, _ := content(t, fs, "b"); got != tt.wantOther {
				t.Errorf("b = %q, want %q", got, tt.wantOther)
			}
		})
	}
}

func TestReadErrorsAndLatentSectors(t *testing.T) {
	fs := New()
	f, _ := fs.Create("a")
	f.Write([]byte("0123456789"))
	boom := errors.New("boom")
	fails := 1
	fs.SetFaults(Faults{ReadErr: func(name string, off int64, n int) error {
		if fails > 0 {
			fails--
			return boom
		}
		return nil
	}})
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 0); !errors.Is(err, boom) {
		t.Fatalf("first read: %v, want the injected error", err)
	}
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "0123" {
		t.Fatalf("retried read: %q, %v", b, err)
	}
	must(t, fs.MarkLatent("a", 6, 2))
	for _, tc := range []struct {
		off  int64
		fail bool
	}{{0, false}, {3, false}, {4, true}, {6, true}, {7, true}, {8, false}} {
		_, err := f.ReadAt(b[:3], tc.off)
		if got := errors.Is(err, ErrLatent); got != tc.fail {
			t.Errorf("read 3 bytes at %d: %v, want latent error %v", tc.off, err, tc.fail)
		}
	}
	fs.ClearLatent()
	if _, err := f.ReadAt(b[:3], 6); err != nil && err != io.EOF {
		t.Fatalf("read after ClearLatent: %v", err)
	}
	must(t, fs.MarkLatent("a", 6, 2))
	must(t, f.Truncate(5))
	f.Write([]byte("56789"))
	if _, err := f.ReadAt(b[:3], 6); err != nil {
		t.Fatalf("read of rewritten bytes: %v", err)
	}
}

// TestPowerLoss fails the power part way through a sync: the medium keeps
// the bytes the hook lets through, the sync and every later one fail until
// the crash, which loses the rest, and afterwards syncs work again.
func TestPowerLoss(t *testing.T) {
	for keep := 0; keep <= 4; keep++ {
		fs := New()
		f, _ := fs.Create("a")
		f.Write([]byte("1111"))
		must(t, f.Sync())
		must(t, fs.SyncDir(""))
		fs.SetFaults(Faults{Place: func(name string, off int64, p []byte) Placement {
			if off != 4 || string(p) != "2222" {
				t.Errorf("placing %q at %d, want \"2222\" at 4", p, off)
			}
			return Placement{PowerLoss: true, Keep: keep}
		}})
		f.Write([]byte("2222"))
		if err := f.Sync(); !errors.Is(err, ErrPowerLoss) {
			t.Fatalf("keep %d: sync: %v, want ErrPowerLoss", keep, err)
		}
		fs.SetFaults(Faults{})
		b, _ := fs.Create("b")
		b.Write([]byte("bb"))
		if err := b.Sync(); !errors.Is(err, ErrPowerLoss) {
			t.Fatalf("keep %d: a sync after the power loss: %v, want ErrPowerLoss", keep, err)
		}
		if err := fs.SyncDir(""); !errors.Is(err, ErrPowerLoss) {
			t.Fatalf("keep %d: a directory sync after the power loss: %v, want ErrPowerLoss", keep, err)
		}
		fs.Crash(func(n int) int { return n }) // would keep everything unsynced
		if got, _ := content(t, fs, "a"); got != "1111"+"2222"[:keep] {
			t.Errorf("keep %d: a = %q after the crash", keep, got)
		}
		if _, ok := content(t, fs, "b"); ok {
			t.Errorf("keep %d: b exists after the crash; its directory was never synced", keep)
		}
		f, _ = fs.Open("a")
		f.Write([]byte("3"))
		must(t, f.Sync())
	}
}

// TestEagerNames checks that with eager names a crash keeps every change of
// name made before it, synced or not, and only the synced (or torn)
// content behind it.
func TestEagerNames(t *testing.T) {
	for _, eager := range []bool{false, true} {
		fs := New()
		fs.MkdirAll("d")
		f, _ := fs.Create("d/old")
		f.Write([]byte("old"))
		f.Sync()
		fs.SyncDir("d")
		fs.SetEagerNames(eager)
		f, _ = fs.Create("d/new")
		f.Write([]byte("unsynced"))
		fs.Rename("d/old", "d/moved")
		fs.Crash(func(n int) int { return n / 2 })
		got, _ := fs.List("d")
		want := []string{"old"}
		if eager {
			want = []string{"moved", "new"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("eager %v: after the crash the directory holds %q, want %q", eager, got, want)
		}
		if eager {
			if c, _ := content(t, fs, "d/new"); c != "unsy" {
				t.Errorf("new file holds %q after the crash, want the torn prefix %q", c, "unsy")
			}
			if c, _ := content(t, fs, "d/moved"); c != "old" {
				t.Errorf("moved file holds %q, want %q", c, "old")
			}
		}
	}
}

// TestOpHook checks that the Op hook sees each call that changes the file
// system, with its name, before it happens, and that its error fails the
// call and changes nothing: names are eager, so that a refused Create,
// Rename or Remove that went on anyway would show after the crash.
func TestOpHook(t *testing.T) {
	errStop := errors.New("stop")
	tests := []struct {
		op   Op
		name string
		call func(fs *FS, f vfs.File) error
		// file and want are a file's content after the refused call
		// and a crash that keeps every unsynced byte (exists false: no
		// such file).
		file   string
		want   string
		exists bool
	}{
		{OpCreate, "d/b", func(fs *FS, _ vfs.File) error { _, err := fs.Create("/d/b"); return err }, "d/b", "", false},
		{OpWrite, "d/a", func(_ *FS, f vfs.File) error { _, err := f.Write([]byte("more")); return err }, "d/a", "old", true},
		{OpSync, "d/a", func(_ *FS, f vfs.File) error { return f.Sync() }, "d/a", "old", true},
		{OpSyncDir, "d", func(fs *FS, _ vfs.File) error { return fs.SyncDir("d/") }, "d/a", "old", true},
		{OpRename, "d/a", func(fs *FS, _ vfs.File) error { return fs.Rename("d/a", "d/z") }, "d/a", "old", true},
		{OpRemove, "d/a", func(fs *FS, _ vfs.File) error { return fs.Remove("d/a") }, "d/a", "old", true},
	}
	for _, tt := range tests {
		fs := New()
		must(t, fs.MkdirAll("d"))
		f, err := fs.Create("d/a")
		must(t, err)
		_, err = f.Write([]byte("old"))
		must(t, err)
		must(t, f.Sync())
		must(t, fs.SyncDir("d"))
		fs.SetEagerNames(tt.op != OpSyncDir)
		switch tt.op {
		case OpSync:
			// Bytes only a Sync would make durable.
			_, err = f.Write([]byte("+unsynced"))
			must(t, err)
		case OpSyncDir:
			// A removal only a SyncDir would make durable.
			must(t, fs.Remove("d/a"))
		}
		var seen []string
		fs.SetFaults(Faults{Op: func(op Op, name string) error {
			if op != tt.op {
				return nil
			}
			seen = append(seen, name)
			return errStop
		}})
		if err := tt.call(fs, f); !errors.Is(err, errStop) {
			t.Errorf("op %d: call returned %v, want the hook's error", tt.op, err)
		}
		if !slices.Equal(seen, []string{tt.name}) {
			t.Errorf("op %d: hook saw %q, want %q", tt.op, seen, tt.name)
		}
		fs.SetFaults(Faults{})
		if tt.op == OpSync {
			// A crash keeping every unsynced byte keeps the page cache:
			// look at what the refused sync made durable instead.
			fs.Crash(nil)
		} else {
			fs.Crash(func(n int) int { return n })
		}
		if got, ok := content(t, fs, tt.file); ok != tt.exists || got != tt.want {
			t.Errorf("op %d: after the crash %s holds %q (exists %v), want %q (exists %v)", tt.op, tt.file, got, ok, tt.want, tt.exists)
		}
	}
}

// TestWatchAndDurableParts covers what the simulator's durable-work check
// relies on: the names a piece of work touched, and which part of each is
// durable after it.
func TestWatchAndDurableParts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		work       func(t *testing.T, fs *FS)
		watched    []string
		file       string
		nameD, byD bool
	}{
		{name: "written, synced, dir synced", file: "d/a", nameD: true, byD: true, watched: []string{"d/a"},
			work: func(t *testing.T, fs *FS) {
				f := created(t, fs, "d/a", "x")
				must(t, f.Sync())
				must(t, fs.SyncDir("d"))
			}},
		{name: "written, synced, dir not synced", file: "d/a", byD: true, watched: []string{"d/a"},
			work: func(t *testing.T, fs *FS) {
				f := created(t, fs, "d/a", "x")
				must(t, f.Sync())
			}},
		{name: "written, not synced", file: "d/a", nameD: true, watched: []string{"d/a"},
			work: func(t *testing.T, fs *FS) {
				f := created(t, fs, "d/a", "")
				must(t, fs.SyncDir("d"))
				_, err := f.Write([]byte("x"))
				must(t, err)
			}},
		{name: "renamed, dir not synced", file: "d/b", byD: true, watched: []string{"d/a", "d/b"},
			work: func(t *testing.T, fs *FS) {
				f := created(t, fs, "d/a", "")
				must(t, f.Sync())
				must(t, fs.SyncDir("d"))
				must(t, fs.Rename("d/a", "d/b"))
			}},
		{name: "truncated, not synced", file: "d/a", nameD: true, watched: []string{"d/a"},
			work: func(t *testing.T, fs *FS) {
				f := created(t, fs, "d/a", "xy")
				must(t, f.Sync())
				must(t, fs.SyncDir("d"))
				must(t, f.Truncate(1))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := New()
			must(t, fs.MkdirAll("d"))
			fs.Watch()
			tc.work(t, fs)
			if got := fs.Unwatch(); !slices.Equal(got, tc.watched) {
				t.Errorf("watched %v, want %v", got, tc.watched)
			}
			exists, nameD, byD := fs.DurableParts(tc.file)
			if !exists || nameD != tc.nameD || byD != tc.byD {
				t.Errorf("DurableParts(%s) = %v, %v, %v; want true, %v, %v", tc.file, exists, nameD, byD, tc.nameD, tc.byD)
			}
			if fs.Durable(tc.file) != (tc.nameD && tc.byD) {
				t.Errorf("Durable(%s) disagrees with DurableParts", tc.file)
			}
		})
	}
	fs := New()
	fs.Watch()
	must(t, fs.MkdirAll("d"))
	if _, err := fs.Create("d/a"); err != nil {
		t.Fatal(err)
	}
	fs.Unwatch()
	if _, err := fs.Create("d/b"); err != nil {
		t.Fatal(err)
	}
	if got := fs.Unwatch(); len(got) != 0 {
		t.Errorf("names noted after Unwatch: %v", got)
	}
}

// TestListFollowsChanges checks that List tells every change of name, in
// a directory and across two: creation, replacement, rename, removal, a
// crash (back to the synced names) and a loss at rest. It lists after each
// step, and scribbles on what it got, which must not reach the directory.
func TestListFollowsChanges(t *testing.T) {
	fs := New()
	must(t, fs.MkdirAll("d"))
	must(t, fs.MkdirAll("e"))
	create := func(name string) func() {
		return func() {
			f, err := fs.Create(name)
			must(t, err)
			f.Write([]byte(name))
			must(t, f.Sync())
			must(t, f.Close())
		}
	}
	steps := []struct {
		what string
		do   func()
		d, e []string
	}{
		{"create b", create("d/b"), []string{"b"}, nil},
		{"create a", create("d/a"), []string{"a", "b"}, nil},
		{"sync the names", func() { must(t, fs.SyncDir("d")) }, []string{"a", "b"}, nil},
		{"rename in place", func() { must(t, fs.Rename("d/b", "d/c")) }, []string{"a", "c"}, nil},
		{"rename across", func() { must(t, fs.Rename("d/a", "e/a")) }, []string{"c"}, []string{"a"}},
		{"create over", create("d/c"), []string{"c"}, []string{"a"}},
		{"remove", func() { must(t, fs.Remove("d/c")) }, []string{}, []string{"a"}},
		{"crash", func() { fs.Crash(nil) }, []string{"a", "b"}, []string{}},
		{"lose at rest", func() { must(t, fs.LoseAtRest("d/a")) }, []string{"b"}, []string{}},
	}
	for _, st := range steps {
		st.do()
		for dir, want := range map[string][]string{"d": st.d, "e": st.e} {
			got, err := fs.List(dir)
			must(t, err)
			if !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Fatalf("after %s, List(%s) = %q, want %q", st.what, dir, got, want)
			}
			if len(got) > 0 {
				got[0] = "scribbled" // the caller's copy, not the kept names
			}
		}
	}
	// A directory's files and subdirectories come sorted together.
	create("f")()
	if got, err := fs.List(""); err != nil || !slices.Equal(got, []string{"d", "e", "f"}) {
		t.Fatalf("List of the root = %q, %v; want [d e f]", got, err)
	}
	create("c")()
	if got, err := fs.List(""); err != nil || !slices.Equal(got, []string{"c", "d", "e", "f"}) {
		t.Fatalf("List of the root = %q, %v; want [c d e f]", got, err)
	}
}

// TestNamedAt checks that NamedAt tells when a file last got its name:
// at its creation, again when created over, and at a rename to it, which
// leaves the count of the other files as it was.
func TestNamedAt(t *testing.T) {
	fs := New()
	must(t, fs.MkdirAll("d"))
	named := func(name string) uint64 {
		t.Helper()
		n, ok := fs.NamedAt(name)
		if !ok {
			t.Fatalf("NamedAt(%s): no such file", name)
		}
		return n
	}
	create := func(name string) {
		f, err := fs.Create(name)
		must(t, err)
		must(t, f.Close())
	}
	create("d/a")
	create("d/b")
	a, b := named("d/a"), named("d/b")
	if a == 0 || b <= a || fs.Namings() != b {
		t.Fatalf("created a at %d, b at %d, namings %d: want 0 < a < b = namings", a, b, fs.Namings())
	}
	must(t, fs.Rename("d/a", "d/c"))
	if c := named("d/c"); c <= b || named("d/b") != b {
		t.Errorf("renamed to c at %d (b %d, now %d): want after b, b unchanged", c, b, named("d/b"))
	}
	create("d/b")
	if nb := named("d/b"); nb <= b || nb != fs.Namings() {
		t.Errorf("b created over at %d (before %d, namings %d)", nb, b, fs.Namings())
	}
	if _, ok := fs.NamedAt("d/a"); ok {
		t.Error("NamedAt finds the renamed file under its old name")
	}
}
