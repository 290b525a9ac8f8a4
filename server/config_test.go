package server

import (
	"strings"
	"testing"
)

// TestConfigBudgets checks the defaults and bounds of the node's memory
// budgets: PutBodies follows PutWindow, PeerBudgetBytes follows the chunk
// size, and a value out of bounds is refused with a clear error rather than
// run with.
func TestConfigBudgets(t *testing.T) {
	base := Config{ID: 1, DataDir: "/d", HTTPAddr: "127.0.0.1:1", Peers: map[uint64]string{1: "127.0.0.1:2"}}
	tests := []struct {
		name   string
		change func(*Config)
		bodies int
		budget int64
		err    string
	}{
		{"defaults", func(*Config) {}, 16, 64 << 20, ""},
		{"window 8", func(c *Config) { c.PutWindow = 8 }, 32, 64 << 20, ""},
		{"1 MiB chunks", func(c *Config) { c.ChunkBytes = 1 << 20 }, 16, 16 << 20, ""},
		{"given", func(c *Config) { c.PutBodies, c.PeerBudgetBytes = 2, 5<<20 }, 2, 5 << 20, ""},
		{"budget below a chunk", func(c *Config) { c.PeerBudgetBytes = 1 << 20 }, 0, 0, "peer budget 1048576 bytes outside one chunk"},
		{"budget too large", func(c *Config) { c.PeerBudgetBytes = 1 << 40 }, 0, 0, "peer budget"},
		{"negative budget", func(c *Config) { c.PeerBudgetBytes = -1 }, 0, 0, "peer budget"},
		{"too many bodies", func(c *Config) { c.PutBodies = maxPutBodies + 1 }, 0, 0, "put bodies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.change(&c)
			c = c.withDefaults()
			err := c.validate()
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("%v, want an error mentioning %q", err, tt.err)
			case tt.err == "" && (err != nil || c.PutBodies != tt.bodies || c.PeerBudgetBytes != tt.budget):
				t.Errorf("bodies %d budget %d %v, want %d %d", c.PutBodies, c.PeerBudgetBytes, err, tt.bodies, tt.budget)
			}
		})
	}
}
