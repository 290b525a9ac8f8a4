// Package fspath holds the rules for tessera file paths and list prefixes.
//
// A file path is absolute and canonical: it starts with "/", has no empty,
// "." or ".." segments, no trailing slash, no NUL byte, is valid UTF-8 and
// at most MaxPathBytes long. Canonical paths make the namespace
// unambiguous: "/a/b" has exactly one spelling, so byte order of paths is
// the listing order and a prefix query is a byte-prefix match.
package fspath

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathBytes bounds the length of a path or a list prefix.
const MaxPathBytes = 4096

// quote renders p for an error message, truncated if long.
func quote(p string) string {
	if len(p) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", p[:64], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// Validate reports why p is not a valid file path, or nil.
func Validate(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("invalid path: empty")
	case len(p) > MaxPathBytes:
		return fmt.Errorf("invalid path %s: longer than %d bytes", quote(p), MaxPathBytes)
	case p[0] != '/':
		return fmt.Errorf("invalid path %s: not absolute (must start with /)", quote(p))
	case p == "/":
		return fmt.Errorf("invalid path %s: the root is not a file", quote(p))
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("invalid path %s: trailing slash", quote(p))
	}
	if err := common(p); err != nil {
		return err
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" {
			return fmt.Errorf("invalid path %s: empty segment (//)", quote(p))
		}
	}
	return nil
}

// common checks the rules paths and prefixes share: no NUL, valid UTF-8,
// no "." or ".." segment.
func common(p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("invalid path %s: contains a NUL byte", quote(p))
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("invalid path %s: not valid UTF-8", quote(p))
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("invalid path %s: %q segment", quote(p), seg)
		}
	}
	return nil
}

// IsPrefixQuery reports why prefix is not a valid list prefix, or nil. A
// prefix is "" (everything) or starts with "/"; it may end in "/" or in the
// middle of a segment ("/logs/2026-" lists "/logs/2026-11-25").
func IsPrefixQuery(prefix string) error {
	switch {
	case prefix == "":
		return nil
	case len(prefix) > MaxPathBytes:
		return fmt.Errorf("invalid prefix %s: longer than %d bytes", quote(prefix), MaxPathBytes)
	case prefix[0] != '/':
		return fmt.Errorf("invalid prefix %s: not absolute (must start with /)", quote(prefix))
	}
	// A trailing "." or ".." is the start of a name (".profile"), not a segment.
	trimmed := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		trimmed = prefix[:i+1]
	}
	if err := common(trimmed); err != nil {
		return fmt.Errorf("invalid prefix: %w", err)
	}
	return common(prefix[len(trimmed):] + "x")
}
