package meta

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
)

// inlineConfig is a small threshold and cap, so that tests reach both.
var inlineConfig = Config{InlineThreshold: 8, InlineCapBytes: 12}

// configured returns an empty state configured with cfg, as if an
// OpConfigure had applied (without using up a raft index).
func configured(cfg Config) *State {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := New()
	s.cfg, s.configured = cfg, true
	return s
}

// TestConfigure checks that the first OpConfigure sets the configuration
// for good: repeating it is harmless, other values are refused, and
// nothing is inline before it.
func TestConfigure(t *testing.T) {
	a := &applier{s: New()}
	if r := a.apply(Command{Op: OpPut, Path: "/f", Data: []byte("a")}); r.Code != CodeInlineRefused {
		t.Fatalf("inline put before configuration: %s", r.Code)
	}
	tests := []struct {
		cfg  Config
		want Code
		det  string
	}{
		{Config{InlineThreshold: MaxInlineThreshold + 1}, CodeInvalid, "outside"},
		{inlineConfig, CodeOK, ""},
		{inlineConfig, CodeOK, ""},
		{Config{InlineThreshold: 9, InlineCapBytes: 12}, CodeVersionMismatch, "configured with inline threshold 8 and cap 12, not 9 and 12"},
		{Config{}, CodeVersionMismatch, "not 0 and 0"},
	}
	for i, tt := range tests {
		r := a.apply(Command{Op: OpConfigure, Configure: tt.cfg})
		if r.Code != tt.want || !strings.Contains(r.Detail, tt.det) {
			t.Fatalf("configure %d (%+v): %s %q, want %s %q", i, tt.cfg, r.Code, r.Detail, tt.want, tt.det)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	}
	if cfg, ok := a.s.Config(); !ok || cfg != inlineConfig {
		t.Fatalf("configuration %+v %v", cfg, ok)
	}
	if r := a.apply(Command{Op: OpPut, Path: "/f", Data: []byte("a")}); r.Code != CodeOK {
		t.Fatalf("inline put after configuration: %s %q", r.Code, r.Detail)
	}
	r, err := Restore(a.s.Snapshot())
	if cfg, ok := r.Config(); err != nil || !ok || cfg != inlineConfig {
		t.Fatalf("restored configuration %+v %v (%v)", cfg, ok, err)
	}
}

func ref(id uint64, content string) ChunkRef {
	return ChunkRef{ID: id, Group: 2 + id%3, Size: uint32(len(content)), CRC: chunk.Checksum([]byte(content))}
}

// TestInlineWrites checks each form a put or append may take against an
// inline-capable state: the result code, the detail, and the file left
// at /f. Every case starts with chunk ids 1..4 leased.
func TestInlineWrites(t *testing.T) {
	put := func(data string) Command { return Command{Op: OpPut, Path: "/f", Data: []byte(data)} }
	app := func(data string) Command { return Command{Op: OpAppend, Path: "/f", Data: []byte(data)} }
	tests := []struct {
		name    string
		cfg     Config
		cmds    []Command // the last one's result is checked
		want    Code
		det     string
		content string // /f's content afterwards: inline data, "chunks" or "<inline data>+chunks"
	}{
		{"inline put", inlineConfig, []Command{put("abc")}, CodeOK, "", "abc"},
		{"put at the threshold", inlineConfig, []Command{put("12345678")}, CodeOK, "", "12345678"},
		{"put above the threshold", inlineConfig, []Command{put("123456789")}, CodeInlineRefused, "above the cluster's inline threshold of 8", ""},
		{"inlining off", Config{}, []Command{put("a")}, CodeInlineRefused, "threshold of 0", ""},
		{"cap reached", inlineConfig, []Command{{Op: OpPut, Path: "/g", Data: []byte("12345678")}, put("12345")}, CodeInlineRefused, "above the cluster's cap of 12", ""},
		{"replacing frees its bytes", inlineConfig, []Command{put("12345678"), put("abcdefgh")}, CodeOK, "", "abcdefgh"},
		{"inline append", inlineConfig, []Command{put("abc"), app("def")}, CodeOK, "", "abcdef"},
		{"inline append creates", inlineConfig, []Command{app("def")}, CodeOK, "", "def"},
		{"inline append past the threshold", inlineConfig, []Command{put("abcde"), app("fghi")}, CodeInlineRefused, "would hold 9 bytes", "abcde"},
		{"inline append to a chunked file", inlineConfig, []Command{{Op: OpPut, Path: "/f", Chunks: []ChunkRef{ref(1, "abc")}}, app("d")},
			CodeInlineRefused, "has chunks: inline data cannot follow them", "chunks"},
		{"chunked append to an inline file", inlineConfig, []Command{put("abc"), {Op: OpAppend, Path: "/f", Chunks: []ChunkRef{ref(1, "def")}}},
			CodeOK, "", "abc+chunks"},
		{"inline append after chunks", inlineConfig, []Command{put("abc"), {Op: OpAppend, Path: "/f", Chunks: []ChunkRef{ref(1, "def")}}, app("g")},
			CodeInlineRefused, "has chunks", "abc+chunks"},
		{"data and chunks", inlineConfig, []Command{{Op: OpPut, Path: "/f", Data: []byte("a"), Chunks: []ChunkRef{ref(1, "b")}}}, CodeInvalid, "not both", ""},
		{"unleased chunks appended to an inline file", inlineConfig, []Command{put("abc"), {Op: OpAppend, Path: "/f", Chunks: []ChunkRef{ref(9, "abc")}}}, CodeInvalid, "chunk 9 is not leased", "abc"},
		{"empty append keeps inline data", inlineConfig, []Command{put("abc"), {Op: OpAppend, Path: "/f"}}, CodeOK, "", "abc"},
		{"chunked put replaces inline", inlineConfig, []Command{put("abc"), {Op: OpPut, Path: "/f", Chunks: []ChunkRef{ref(1, "xyz")}}}, CodeOK, "", "chunks"},
		{"version condition first", inlineConfig, []Command{put("abc"), {Op: OpPut, Path: "/f", HasIfVersion: true, IfVersion: 9, Data: []byte("123456789")}},
			CodeVersionMismatch, "not 9", "abc"},
	}
	for _, tt := range tests {
		a := &applier{s: configured(tt.cfg)}
		a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 100})
		var res Result
		for _, c := range tt.cmds {
			res = a.apply(c)
		}
		if res.Code != tt.want || !strings.Contains(res.Detail, tt.det) {
			t.Errorf("%s: %s %q, want %s mentioning %q", tt.name, res.Code, res.Detail, tt.want, tt.det)
		}
		if res.File.Data != nil {
			t.Errorf("%s: the result carries the file's data", tt.name)
		}
		f, ok := a.s.Get("/f")
		prefix, chunked := strings.CutSuffix(tt.content, "chunks")
		prefix = strings.TrimSuffix(prefix, "+")
		switch {
		case tt.content == "" && ok:
			t.Errorf("%s: /f exists: %+v", tt.name, f)
		case tt.content == "":
		case !ok || chunked == (len(f.Chunks) == 0) || string(f.Data) != prefix || f.InlineSize() != int64(len(prefix)):
			t.Errorf("%s: /f is %+v, want %q", tt.name, f, tt.content)
		case !chunked && (!f.Inline() || f.Size != int64(len(prefix))):
			t.Errorf("%s: /f is %+v, want inline %q", tt.name, f, tt.content)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if r, err := Restore(a.s.Snapshot()); err != nil || r.Hash() != a.s.Hash() {
			t.Errorf("%s: restore: %v", tt.name, err)
		}
	}
}

// TestInlineGarbage checks that replacing a chunked file by an inline one
// and back collects the chunks, and that the counters follow every write,
// append, rename and delete.
func TestInlineGarbage(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 100, InlineCapBytes: 1000})}
	a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 100})
	steps := []struct {
		cmd     Command
		garbage []uint64
		files   int
		bytes   int64
	}{
		{Command{Op: OpPut, Path: "/f", Chunks: []ChunkRef{ref(1, "abc"), ref(2, "d")}}, nil, 0, 0},
		{Command{Op: OpPut, Path: "/f", Data: []byte("inline")}, []uint64{1, 2}, 1, 6},
		{Command{Op: OpPut, Path: "/g", Data: []byte("xy")}, []uint64{1, 2}, 2, 8},
		{Command{Op: OpRename, Path: "/g", NewPath: "/f"}, []uint64{1, 2}, 1, 2},
		{Command{Op: OpAppend, Path: "/f", Chunks: []ChunkRef{ref(3, "z")}}, []uint64{1, 2}, 1, 2},
		{Command{Op: OpRename, Path: "/f", NewPath: "/h"}, []uint64{1, 2}, 1, 2},
		{Command{Op: OpPut, Path: "/h", Data: []byte("again")}, []uint64{1, 2, 3}, 1, 5},
		{Command{Op: OpPut, Path: "/f", Chunks: []ChunkRef{ref(4, "chunked")}}, []uint64{1, 2, 3}, 1, 5},
		{Command{Op: OpDelete, Path: "/h"}, []uint64{1, 2, 3}, 0, 0},
		{Command{Op: OpDelete, Path: "/f"}, []uint64{1, 2, 3, 4}, 0, 0},
	}
	for i, st := range steps {
		if r := a.apply(st.cmd); r.Code != CodeOK {
			t.Fatalf("step %d: %s %q", i, r.Code, r.Detail)
		}
		var ids []uint64
		for _, c := range a.s.Garbage() {
			ids = append(ids, c.ID)
		}
		files, n := a.s.Inline()
		if !equalIDs(ids, st.garbage) || files != st.files || n != st.bytes {
			t.Fatalf("step %d: garbage %v, %d inline files of %d bytes; want %v, %d, %d", i, ids, files, n, st.garbage, st.files, st.bytes)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

// TestInlineExactlyOnce follows a client through its fallbacks under one
// sequence number: a refused inline form is not remembered, the same
// request chunked applies, and after that every form of it (a late copy
// of the inline attempt too) gets the first result.
func TestInlineExactlyOnce(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 8, InlineCapBytes: 8})}
	a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 100})
	a.apply(Command{Op: OpPut, Path: "/full", Data: []byte("12345")})
	inline := Command{Op: OpPut, Path: "/f", Session: 7, Seq: 1, Data: []byte("hello")}
	chunked := Command{Op: OpPut, Path: "/f", Session: 7, Seq: 1, Chunks: []ChunkRef{ref(1, "hel"), ref(2, "lo")}}
	if inline.Fingerprint() != chunked.Fingerprint() {
		t.Fatal("the same content inline and in chunks fingerprints differently")
	}
	if r := a.apply(inline); r.Code != CodeInlineRefused {
		t.Fatalf("inline put above the cap: %s", r.Code)
	}
	if r := a.apply(inline); r.Code != CodeInlineRefused {
		t.Fatalf("the refusal was remembered: %s", r.Code)
	}
	first := a.apply(chunked)
	if first.Code != CodeOK {
		t.Fatalf("chunked fallback: %s %q", first.Code, first.Detail)
	}
	// Room frees up; a late copy of the inline attempt must not apply.
	a.apply(Command{Op: OpDelete, Path: "/full"})
	for _, c := range []Command{inline, chunked} {
		if r := a.apply(c); !sameResult(r, first) {
			t.Fatalf("late %+v: %s, want the first result", c, r.Code)
		}
	}
	if f, _ := a.s.Get("/f"); f.Inline() || f.Version != first.File.Version {
		t.Fatalf("/f is %+v", f)
	}
	other := Command{Op: OpPut, Path: "/f", Session: 7, Seq: 1, Data: []byte("hellO")}
	if r := a.apply(other); r.Code != CodeSessionReuse {
		t.Fatalf("other inline content under the same sequence: %s", r.Code)
	}
}

// TestCommandFormats checks that commands of format 1 (logs written before
// inline data) still decode, and that inline data round trips.
func TestCommandFormats(t *testing.T) {
	c := Command{Op: OpPut, Session: 1, Seq: 2, Path: "/a", Chunks: []ChunkRef{ref(1, "a")}, MTimeNanos: 9, Legacy: true}
	v2 := c.Marshal()
	// Format 1 is format 2 without the trailing fields (Data and
	// Configure: three zero bytes here).
	v1 := append([]byte{commandFormatV1}, v2[1:len(v2)-3]...)
	got, err := UnmarshalCommand(v1)
	if err != nil || got.Fingerprint() != c.Fingerprint() || got.Data != nil || !got.Legacy {
		t.Fatalf("format 1: %+v, %v", got, err)
	}
	// A session command of format 2 is Legacy and encodes as it came; one
	// of a registered session is format 4, format 2 with a placement.
	if got, err := UnmarshalCommand(v2); err != nil || !got.Legacy || !bytes.Equal(got.Marshal(), v2) || v2[0] != commandFormat {
		t.Fatalf("format 2 session command: %+v, %v", got, err)
	}
	c.Legacy = false
	v4 := c.Marshal()
	if got, err := UnmarshalCommand(v4); err != nil || got.Legacy || v4[0] != commandFormatSession || !bytes.Equal(v4[1:len(v4)-2], v2[1:]) {
		t.Fatalf("format 4 session command %x: %+v, %v", v4, got, err)
	}
	if b := (Command{Op: OpRegister}).Marshal(); b[0] != commandFormatSession {
		t.Fatalf("registration in format %d", b[0])
	}
	if b := (Command{Op: OpDelete, Path: "/a"}).Marshal(); b[0] != commandFormat {
		t.Fatalf("sessionless delete in format %d", b[0])
	}
	// A command with a clock is format 5: format 4 with the clock at the
	// end, sessionless ones too; format 5 without a clock does not decode.
	for _, c := range []Command{{Op: OpDelete, Path: "/a", ClockNanos: 7, MTimeNanos: 9}, {Op: OpPut, Session: 3, Seq: 1, Path: "/a", ClockNanos: -1}} {
		b := c.Marshal()
		got, err := UnmarshalCommand(b)
		if err != nil || b[0] != commandFormatClock || got.ClockNanos != c.ClockNanos || got.MTimeNanos != c.MTimeNanos || got.Time() != c.ClockNanos || !bytes.Equal(got.Marshal(), b) {
			t.Fatalf("format 5 %x: %+v, %v", b, got, err)
		}
		if _, err := UnmarshalCommand(append(b[:len(b)-1:len(b)-1], 0)); err == nil {
			t.Fatalf("format 5 with a zero clock decoded")
		}
	}
	if got, _ := UnmarshalCommand(v2); got.Time() != 9 {
		t.Fatalf("an older format's time %d, want its mtime 9", got.Time())
	}
	c = Command{Op: OpAppend, Path: "/a", Data: []byte("inline")}
	got, err = UnmarshalCommand(c.Marshal())
	if err != nil || !bytes.Equal(got.Data, c.Data) {
		t.Fatalf("inline command: %+v, %v", got, err)
	}
	big := Command{Op: OpPut, Path: "/a", Data: make([]byte, MaxInlineThreshold+1)}
	if _, err := UnmarshalCommand(big.Marshal()); err == nil {
		t.Fatal("a command with inline data above MaxInlineThreshold decoded")
	}
}

// TestSnapshotFormats checks that a snapshot keeps the configuration and
// inline data, that a TMS3 snapshot (testdata/snapshot-tms3.bin, written
// by the version before inline files) restores unconfigured and can then
// be configured, and that a configuration out of bounds is refused.
func TestSnapshotFormats(t *testing.T) {
	a := &applier{s: configured(inlineConfig)}
	a.apply(Command{Op: OpPut, Path: "/i", Data: []byte("inline"), Session: 3, Seq: 1})
	r, err := Restore(a.s.Snapshot())
	if cfg, ok := r.Config(); err != nil || !ok || cfg != inlineConfig || r.Hash() != a.s.Hash() {
		t.Fatalf("round trip: %+v %v", r, err)
	}
	if f, _ := r.Get("/i"); string(f.Data) != "inline" {
		t.Fatalf("restored /i: %+v", f)
	}
	if n, b := r.Inline(); n != 1 || b != 6 {
		t.Fatalf("restored counters: %d files, %d bytes", n, b)
	}

	old, err := os.ReadFile("testdata/snapshot-tms3.bin")
	if err != nil {
		t.Fatal(err)
	}
	v3, err := Restore(old)
	if err != nil {
		t.Fatalf("TMS3: %v", err)
	}
	if cfg, ok := v3.Config(); ok || cfg != (Config{}) || v3.Len() != 3 || v3.Applied() != 5 {
		t.Fatalf("TMS3 restored as %+v (configured %v) with %d files at %d", cfg, ok, v3.Len(), v3.Applied())
	}
	if f, _ := v3.Get("/b"); f.Size != 2 || len(f.Chunks) != 1 || f.Chunks[0].ID != 3 {
		t.Fatalf("TMS3 /b: %+v", f)
	}
	// Its sessions' fingerprints still recognise a retry.
	retry := Command{Op: OpPut, Path: "/b", Session: 5, Seq: 4, MTimeNanos: 9, Chunks: []ChunkRef{{ID: 7, Group: 2, Size: 2, CRC: chunk.Checksum([]byte("yz"))}}}
	if res := v3.Apply(6, retry); res.Code != CodeOK || res.File.Version != 4 {
		t.Fatalf("retry after TMS3: %s %q version %d", res.Code, res.Detail, res.File.Version)
	}
	if res := v3.Apply(7, Command{Op: OpPut, Path: "/c", Data: []byte("x")}); res.Code != CodeInlineRefused {
		t.Fatalf("inline put after TMS3: %s", res.Code)
	}
	v3.Apply(8, Command{Op: OpConfigure, Configure: inlineConfig})
	if res := v3.Apply(9, Command{Op: OpPut, Path: "/c", Data: []byte("x")}); res.Code != CodeOK {
		t.Fatalf("inline put after TMS3 and configuration: %s %q", res.Code, res.Detail)
	}
	if err := v3.CheckInvariants(); err != nil {
		t.Fatal(err)
	}

	bad := configured(Config{InlineThreshold: MaxInlineThreshold})
	bad.cfg.InlineThreshold++
	if _, err := Restore(bad.Snapshot()); err == nil || !strings.Contains(err.Error(), "inline threshold") {
		t.Fatalf("threshold above the maximum: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{DefaultConfig(), true},
		{Config{InlineThreshold: MaxInlineThreshold, InlineCapBytes: 1}, true},
		{Config{InlineThreshold: MaxInlineThreshold + 1}, false},
		{Config{InlineThreshold: -1}, false},
		{Config{InlineCapBytes: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.cfg, err)
		}
	}
}

// TestHashCoversInlineData checks that states differing only in a file's
// inline bytes hash differently, though Hash reads only their checksums.
func TestHashCoversInlineData(t *testing.T) {
	hash := func(data string) uint64 {
		a := &applier{s: configured(inlineConfig)}
		a.apply(Command{Op: OpPut, Path: "/f", Data: []byte(data)})
		return a.s.Hash()
	}
	first, again, other := hash("abc"), hash("abc"), hash("abd")
	if first != again || first == other {
		t.Fatalf("the hash does not follow the inline bytes: abc %x then %x, abd %x", first, again, other)
	}
}
