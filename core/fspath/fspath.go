// Package fspath holds the rules for tessera file paths and list prefixes.
//
// A file path is absolute and canonical: it starts with "/", has no empty,
// "." or ".." segments, no trailing slash, no NUL byte, is valid UTF-8 and
// at most MaxPathBytes long. Canonical paths make the namespace
// unambiguous: "/a/b" has exactly one spelling, so byte order of paths is
// the listing order and a prefix query is a byte-prefix match.
//
// The package is pure: it never touches a file system, so the rules are the
// same on every node and in the simulator.
package fspath

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathBytes bounds the length of a path or a list prefix.
const MaxPathBytes = 4096

// maxQuoteBytes bounds how much of a path an error message repeats, so that
// errors stay readable and small whatever the input.
const maxQuoteBytes = 64

// quote renders p for an error message, truncated if long.
func quote(p string) string {
	if len(p) > maxQuoteBytes {
		return fmt.Sprintf("%q… (%d bytes)", p[:maxQuoteBytes], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// Validate reports why p is not a valid file path, or nil.
func Validate(p string) error {
	fail := func(rule string) error { return fmt.Errorf("invalid path %s: %s", quote(p), rule) }
	switch {
	case p == "":
		return fmt.Errorf("invalid path: empty")
	case len(p) > MaxPathBytes:
		return fail(fmt.Sprintf("longer than %d bytes", MaxPathBytes))
	case p[0] != '/':
		return fail("not absolute (must start with /)")
	case p == "/":
		return fail("the root is a directory, not a file")
	case strings.HasSuffix(p, "/"):
		return fail("trailing slash")
	}
	if rule := content(p); rule != "" {
		return fail(rule)
	}
	// p starts with "/" and does not end with one, so every element of the
	// split is a segment: an empty one comes from "//".
	for seg := range strings.SplitSeq(p[1:], "/") {
		if rule := segment(seg); rule != "" {
			return fail(rule)
		}
	}
	return nil
}

// IsPrefixQuery reports why prefix is not a valid list prefix, or nil. A
// prefix is "" (everything) or starts with "/"; it may end in "/" or in the
// middle of a name ("/logs/2026-" lists "/logs/2026-11-25"). Only complete
// segments, those followed by "/", may not be "." or "..": a trailing "."
// or ".." is the start of a name such as ".profile" or "..x". Empty
// segments are allowed; they match no file.
func IsPrefixQuery(prefix string) error {
	fail := func(rule string) error { return fmt.Errorf("invalid list prefix %s: %s", quote(prefix), rule) }
	switch {
	case prefix == "":
		return nil
	case len(prefix) > MaxPathBytes:
		return fail(fmt.Sprintf("longer than %d bytes", MaxPathBytes))
	case prefix[0] != '/':
		return fail("not absolute (must start with /)")
	}
	if rule := content(prefix); rule != "" {
		return fail(rule)
	}
	segs := strings.Split(prefix[1:], "/")
	for _, seg := range segs[:len(segs)-1] { // the last one is not complete
		if seg == "." || seg == ".." {
			return fail(fmt.Sprintf("%q segment", seg))
		}
	}
	return nil
}

// content checks the byte-level rules paths and prefixes share and returns
// the rule broken, or "".
func content(p string) string {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return "contains a NUL byte"
	case !utf8.ValidString(p):
		return "not valid UTF-8"
	}
	return ""
}

// segment returns the rule a file path segment breaks, or "".
func segment(seg string) string {
	switch seg {
	case "":
		return "empty segment (//)"
	case ".", "..":
		return fmt.Sprintf("%q segment", seg)
	}
	return ""
}
