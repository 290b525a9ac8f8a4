package main

import (
	"math"
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

// TestMemoryLimit checks how --memory-limit becomes the runtime's soft
// limit: a size, none for 0 or off, the environment's GOMEMLIMIT when the
// flag was not given, and a clear error below the minimum.
func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		flag  string
		given bool
		env   string
		want  int64
		err   string
	}{
		{defaultMemoryLimit, false, "", 256 << 20, ""},
		{"1GiB", true, "", 1 << 30, ""},
		{"0", true, "", math.MaxInt64, ""},
		{"off", true, "", math.MaxInt64, ""},
		{defaultMemoryLimit, false, "100MiB", -1, ""},
		{"512MiB", true, "100MiB", 512 << 20, ""},
		{"1MiB", true, "", 0, "below the minimum"},
		{"lots", true, "", 0, "--memory-limit: bad size"},
	}
	for _, tt := range tests {
		got, err := memoryLimit(tt.flag, tt.given, tt.env)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q given=%v env=%q: %v, want an error mentioning %q", tt.flag, tt.given, tt.env, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%q given=%v env=%q: %d %v, want %d", tt.flag, tt.given, tt.env, got, err, tt.want)
		}
	}
}

// TestPageCacheKeep checks --page-cache-keep: a size, no bound for 0, off
// or nothing (a config file without the key), and a clear error below the minimum or for what is not a size.
func TestPageCacheKeep(t *testing.T) {
	tests := []struct {
		flag string
		want int64
		err  string
	}{
		{"64MiB", 64 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"off", 0, ""},
		{"0", 0, ""},
		{"", 0, ""},
		{"1MiB", 0, "below the minimum"},
		{"lots", 0, "--page-cache-keep: bad size"},
	}
	for _, tt := range tests {
		got, err := pageCacheKeep(tt.flag)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want an error mentioning %q", tt.flag, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%q: %d %v, want %d", tt.flag, got, err, tt.want)
		}
	}
}

// TestBudgetFlags checks how --put-bodies and --peer-budget (and their
// config keys) become server settings (0: the server's default), the flag
// winning over the file, and that a bad value is refused with the flag's
// name (server.Config's own bounds are tested in package server).
func TestBudgetFlags(t *testing.T) {
	tests := []struct {
		args   []string
		file   nodeFile
		bodies int
		budget int64
		err    string
	}{
		{nil, nodeFile{}, 0, 0, ""},
		{[]string{"--put-bodies", "3", "--peer-budget", "16MiB"}, nodeFile{}, 3, 16 << 20, ""},
		{nil, nodeFile{PutBodies: 7, PeerBudget: "1GiB"}, 7, 1 << 30, ""},
		{[]string{"--put-bodies", "2"}, nodeFile{PutBodies: 7, PeerBudget: "8MiB"}, 2, 8 << 20, ""},
		{[]string{"--peer-budget", "lots"}, nodeFile{}, 0, 0, "--peer-budget: bad size"},
		{[]string{"--put-bodies", "-1"}, nodeFile{}, 0, 0, "--put-bodies: -1 is negative"},
	}
	for _, tt := range tests {
		cmd := nodeCmd()
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		var f nodeFile
		var err error
		if f.PutBodies, err = cmd.Flags().GetInt("put-bodies"); err != nil {
			t.Fatal(err)
		}
		if f.PeerBudget, err = cmd.Flags().GetString("peer-budget"); err != nil {
			t.Fatal(err)
		}
		var peers, chunk, maxFile, tick, replaceAfter, logLevel = "1=127.0.0.1:1", "4MiB", "64GiB", "50ms", "5m", "info"
		mergeNodeFile(cmd, &f, tt.file, &peers, &chunk, &maxFile, &tick, &replaceAfter, &logLevel)
		cfg, err := nodeConfig(f, peers, chunk, maxFile, tick, replaceAfter, logLevel)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%v %+v: %v, want an error mentioning %q", tt.args, tt.file, err, tt.err)
		case tt.err == "" && (err != nil || cfg.PutBodies != tt.bodies || cfg.PeerBudgetBytes != tt.budget):
			t.Errorf("%v %+v: bodies %d budget %d %v, want %d %d", tt.args, tt.file, cfg.PutBodies, cfg.PeerBudgetBytes, err, tt.bodies, tt.budget)
		}
	}
}

// TestLeaderDirectFlag checks --leader-direct's sources: on by default, off
// by the flag or by the config file's leader_direct, the flag winning.
func TestLeaderDirectFlag(t *testing.T) {
	tests := []struct {
		args []string
		file string // the config file; "" for none
		want bool
	}{
		{nil, "", true},
		{nil, `{}`, true},
		{nil, `{"leader_direct": false}`, false},
		{nil, `{"leader_direct": true}`, true},
		{[]string{"--leader-direct=false"}, "", false},
		{[]string{"--leader-direct=false"}, `{"leader_direct": true}`, false},
		{[]string{"--leader-direct"}, `{"leader_direct": false}`, true},
	}
	for _, tt := range tests {
		cmd := nodeCmd()
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		var f nodeFile
		var err error
		if f.LeaderDirect, err = cmd.Flags().GetBool("leader-direct"); err != nil {
			t.Fatal(err)
		}
		if tt.file != "" {
			file, err := decodeNodeFile([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var peers, chunk, maxFile, tick, replaceAfter, logLevel = "1=127.0.0.1:1", "4MiB", "64GiB", "50ms", "5m", "info"
			mergeNodeFile(cmd, &f, file, &peers, &chunk, &maxFile, &tick, &replaceAfter, &logLevel)
		}
		if f.LeaderDirect != tt.want {
			t.Errorf("%v, file %q: leader-direct %v, want %v", tt.args, tt.file, f.LeaderDirect, tt.want)
		}
	}
	if _, err := decodeNodeFile([]byte(`{"leader_drect": true}`)); err == nil {
		t.Error("a misspelt key was accepted")
	}
}

// TestApplyDurableOnlyFlag checks --apply-durable-only's sources: off by
// default, on by the flag or by the config file's apply_durable_only, the
// flag winning, and handed to the node's configuration.
func TestApplyDurableOnlyFlag(t *testing.T) {
	tests := []struct {
		args []string
		file string // the config file; "" for none
		want bool
	}{
		{nil, "", false},
		{nil, `{}`, false},
		{nil, `{"apply_durable_only": true}`, true},
		{[]string{"--apply-durable-only"}, "", true},
		{[]string{"--apply-durable-only=false"}, `{"apply_durable_only": true}`, false},
		{[]string{"--apply-durable-only"}, `{"apply_durable_only": false}`, true},
	}
	for _, tt := range tests {
		cmd := nodeCmd()
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		f := nodeFile{ID: 1}
		var err error
		if f.ApplyDurableOnly, err = cmd.Flags().GetBool("apply-durable-only"); err != nil {
			t.Fatal(err)
		}
		var peers, chunk, maxFile, tick, replaceAfter, logLevel = "1=127.0.0.1:1", "4MiB", "64GiB", "50ms", "5m", "info"
		if tt.file != "" {
			file, err := decodeNodeFile([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			mergeNodeFile(cmd, &f, file, &peers, &chunk, &maxFile, &tick, &replaceAfter, &logLevel)
		}
		cfg, err := nodeConfig(f, peers, chunk, maxFile, tick, replaceAfter, logLevel)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ApplyDurableOnly != tt.want {
			t.Errorf("%v, file %q: apply-durable-only %v, want %v", tt.args, tt.file, cfg.ApplyDurableOnly, tt.want)
		}
	}
}
