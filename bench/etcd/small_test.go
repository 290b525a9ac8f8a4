package main

import (
	"strings"
	"testing"
)

func TestParseSmall(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error substring, "" for none
	}{
		{nil, ""},
		{[]string{"--op", "get", "--clients", "64", "--size", "1KiB"}, ""},
		{[]string{"--size", "0"}, ""},
		{[]string{"--op", "delete"}, "--op"},
		{[]string{"--entry", "leader"}, ""},
		{[]string{"--entry", "nearest"}, "--entry"},
		{[]string{"--clients", "0"}, "--clients"},
		{[]string{"--size", "2MiB"}, "--size"},
		{[]string{"--size", "big"}, "--size"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--files", "0"}, "--files"},
		{[]string{"--endpoints", "10.0.0.1:2379"}, "not a loopback address"},
		{[]string{"--endpoints", "localhost:2379"}, "not a loopback address"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		cfg, err := parseSmall(tc.args, "r")
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
		if err == nil && (cfg.prefix != "/bench/small/r" || len(cfg.endpoints) != 3) {
			t.Errorf("%v: %+v", tc.args, cfg)
		}
	}
	if cfg, _ := parseSmall([]string{"--size", "1KiB"}, "r"); cfg.sizeBytes != 1024 || cfg.opsOut != "" || cfg.load.RecordOps {
		t.Errorf("1KiB: %+v", cfg)
	}
	if cfg, err := parseSmall([]string{"--ops-out", "/tmp/ops.tsv"}, "r"); err != nil || cfg.opsOut != "/tmp/ops.tsv" || !cfg.load.RecordOps {
		t.Errorf("--ops-out: %+v, %v", cfg, err)
	}
}
