package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestInlineFlags checks how --inline-threshold and --inline-cap (and
// their config keys) become server settings: 0 disables inlining, which
// server.Config spells as a negative threshold.
func TestInlineFlags(t *testing.T) {
	tests := []struct {
		args      []string
		file      nodeFile
		threshold int64
		capacity  int64
		err       string
	}{
		{nil, nodeFile{}, 16 << 10, 256 << 20, ""},
		{[]string{"--inline-threshold", "4KiB", "--inline-cap", "1MiB"}, nodeFile{}, 4 << 10, 1 << 20, ""},
		{[]string{"--inline-threshold", "0"}, nodeFile{}, -1, 256 << 20, ""},
		{nil, nodeFile{Inline: "100", InlineCap: "2GiB"}, 100, 2 << 30, ""},
		{[]string{"--inline-threshold", "200"}, nodeFile{Inline: "100"}, 200, 256 << 20, ""},
		{[]string{"--inline-threshold", "2MiB"}, nodeFile{}, 0, 0, "above the maximum"},
		{[]string{"--inline-threshold", "lots"}, nodeFile{}, 0, 0, "--inline-threshold: bad size"},
		{[]string{"--inline-cap", "0"}, nodeFile{}, 0, 0, "--inline-cap: must be above 0"},
	}
	for _, tt := range tests {
		var f inlineFlags
		cmd := &cobra.Command{Use: "x"}
		f.register(cmd)
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		f.merge(cmd, tt.file)
		th, c, err := f.parse()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%v %+v: %v, want an error mentioning %q", tt.args, tt.file, err, tt.err)
		case tt.err == "" && (err != nil || th != tt.threshold || c != tt.capacity):
			t.Errorf("%v %+v: %d %d %v, want %d %d", tt.args, tt.file, th, c, err, tt.threshold, tt.capacity)
		}
	}
}
