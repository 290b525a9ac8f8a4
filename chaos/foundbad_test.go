package chaos

import "testing"

// TestBadBytes: of the nodes' log lines, the warnings of chunk files found
// holding wrong bytes count; those of files found missing do not, nor
// short files when staged files are lost (a crash may cut a fetch's write).
func TestBadBytes(t *testing.T) {
	const prefix = `time=2026-12-02T11:00:00.000Z level=WARN msg="corrupt chunk" node=3 group=4 chunk=1640 err=`
	cases := []struct {
		line            string
		strict, lenient bool // want, with short files counted and not
	}{
		{prefix + `"chunk: 1640: bad header: chunk: checksum mismatch"`, true, true},
		{prefix + `"chunk: 1640: chunk: checksum mismatch"`, true, true},
		{prefix + `"chunk: read 1640: short file (20 bytes): chunk: checksum mismatch"`, true, false},
		{prefix + `"chunk: not held here"`, false, false},
		{`time=2026-12-02T11:00:00.000Z level=WARN msg="peer unreachable" node=2`, false, false},
	}
	for _, c := range cases {
		if got := badBytes(c.line, false); got != c.strict {
			t.Errorf("badBytes(%q, false) = %v", c.line, got)
		}
		if got := badBytes(c.line, true); got != c.lenient {
			t.Errorf("badBytes(%q, true) = %v", c.line, got)
		}
	}
}
