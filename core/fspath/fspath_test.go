package fspath

import (
	"path"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
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
		{"a/b", "not absolute"},
		{"/", "root"},
		{"/a/", "trailing slash"},
		{"/a//b", "empty segment"},
		{"/a/./b", `"." segment`},
		{"/a/../b", `".." segment`},
		{"/..", `".." segment`},
		{"/a/.", `"." segment`},
		{"/a\x00b", "NUL"},
		{"/a\xffb", "UTF-8"},
		{"/" + strings.Repeat("x", MaxPathBytes), "longer than"},
	}
	for _, tt := range tests {
		err := Validate(tt.p)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want ok", tt.p, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%q) = %v, want an error mentioning %q", tt.p, err, tt.want)
		}
	}
}

func TestIsPrefixQuery(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"", true}, {"/", true}, {"/a/", true}, {"/a/b", true}, {"/logs/2026-", true},
		{"/.", true}, {"/a/..", true}, // the start of names like ".x" and "..y"
		{"a", false}, {"/a/../", false}, {"/./", false}, {"/a\x00", false}, {"/\xff", false},
		{"/" + strings.Repeat("x", MaxPathBytes), false},
	}
	for _, tt := range tests {
		if err := IsPrefixQuery(tt.p); (err == nil) != tt.ok {
			t.Errorf("IsPrefixQuery(%q) = %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"/a", "/a/b", "", "/", "//", "/a/../b", "/./", "/a\x00", "/\xff", "/ü/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Validate(p) != nil {
			return
		}
		if path.Clean(p) != p {
			t.Fatalf("valid path %q is not canonical (Clean gives %q)", p, path.Clean(p))
		}
		if err := IsPrefixQuery(p); err != nil {
			t.Fatalf("valid path %q is not a valid prefix: %v", p, err)
		}
		if err := IsPrefixQuery(p + "/"); err != nil {
			t.Fatalf("valid path %q plus / is not a valid prefix: %v", p, err)
		}
	})
}
