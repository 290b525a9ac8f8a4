package fspath

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidate(t *testing.T) {
	long := "/" + strings.Repeat("x", MaxPathBytes)
	tests := []struct {
		p    string
		want string // substring of the error, "" for valid
	}{
		{"/a", ""},
		{"/a/b/c.txt", ""},
		{"/.hidden/x..y/...", ""},
		{"/ünïcödé/文件", ""},
		{"/" + strings.Repeat("x", MaxPathBytes-1), ""},
		{"", "empty"},
		{"a/b", `"a/b": not absolute`},
		{"/", "root"},
		{"/a/", `"/a/": trailing slash`},
		{"/a//b", `"/a//b": empty segment`},
		{"//a", "empty segment"},
		{"/a/./b", `"." segment`},
		{"/a/../b", `".." segment`},
		{"/..", `".." segment`},
		{"/a/.", `"." segment`},
		{"/a\x00b", "NUL"},
		{"/a\xffb", "UTF-8"},
		{long, "longer than 4096 bytes"},
		// Long paths are quoted truncated, with their length.
		{long, "(4097 bytes)"},
	}
	for _, tt := range tests {
		err := Validate(tt.p)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%.80q) = %v, want ok", tt.p, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%.80q) = %v, want an error mentioning %q", tt.p, err, tt.want)
		case err != nil && len(err.Error()) > 200:
			t.Errorf("Validate(%.80q): error of %d bytes", tt.p, len(err.Error()))
		}
	}
}

func TestIsPrefixQuery(t *testing.T) {
	tests := []struct {
		p    string
		want string // substring of the error, "" for valid
	}{
		{"", ""}, {"/", ""}, {"/a/", ""}, {"/a/b", ""}, {"/logs/2026-", ""},
		{"/.", ""}, {"/a/..", ""}, // the start of names like ".x" and "..y"
		{"//", ""}, // matches nothing, but is not wrong
		{"/" + strings.Repeat("x", MaxPathBytes-1), ""},
		{"a", `"a": not absolute`},
		{"/a/../", `"/a/../": ".." segment`},
		{"/./", `"." segment`},
		{"/a\x00", `"/a\x00": contains a NUL byte`},
		{"/\xff", "not valid UTF-8"},
		{"/" + strings.Repeat("x", MaxPathBytes), "longer than"},
	}
	for _, tt := range tests {
		err := IsPrefixQuery(tt.p)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("IsPrefixQuery(%.80q) = %v, want ok", tt.p, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("IsPrefixQuery(%.80q) = %v, want an error mentioning %q", tt.p, err, tt.want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"/a", "/a/b", "", "/", "//", "/a/../b", "/./", "/a\x00", "/\xff", "/ü/x", "/..x/.y", "a/b", "/a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		prefixErr := IsPrefixQuery(p) // must not panic on anything
		if Validate(p) != nil {
			return
		}
		if path.Clean(p) != p {
			t.Fatalf("valid path %q is not canonical (Clean gives %q)", p, path.Clean(p))
		}
		if prefixErr != nil {
			t.Fatalf("valid path %q is not a valid prefix: %v", p, prefixErr)
		}
		// Every prefix of a valid path that a client could send (valid
		// UTF-8) must be accepted as a list prefix, or some listing of
		// existing files could not be asked for.
		for i := 1; i < len(p); i++ {
			if q := p[:i]; utf8.ValidString(q) {
				if err := IsPrefixQuery(q); err != nil {
					t.Fatalf("prefix %q of valid path %q refused: %v", q, p, err)
				}
			}
		}
		if len(p) < MaxPathBytes {
			if err := IsPrefixQuery(p + "/"); err != nil {
				t.Fatalf("directory prefix %q/ refused: %v", p, err)
			}
		}
	})
}
