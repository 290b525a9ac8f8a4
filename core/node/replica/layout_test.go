package replica

import (
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestLayoutRecordCutShort: a layout file whose write was cut short (empty,
// or a prefix of the record) is written again on the next start, as no log
// can exist yet; any other content is still refused.
func TestLayoutRecordCutShort(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr bool
	}{
		{"empty", "", false},
		{"prefix", sharedLayout[:5], false},
		{"whole", sharedLayout, false},
		{"other", "per-group\n", true},
		{"longer", sharedLayout + "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			if err := writeMarker(fs, "node", layoutFile, []byte(tt.content), true); err != nil {
				t.Fatal(err)
			}
			err := CheckLayout(fs, true, []uint64{1, 2})
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckLayout with %q: %v, want error %v", tt.content, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got, err := readAll(fs, layoutFile); err != nil || string(got) != sharedLayout {
				t.Fatalf("layout file holds %q (%v) after the start, want %q", got, err, sharedLayout)
			}
		})
	}
}
