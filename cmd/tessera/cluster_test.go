package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestClusterAddrs checks cluster up's port layout: peers 100 above the
// HTTP ports by default, anywhere else with --peer-base-port, and refused
// when the two ranges overlap or leave the port space. No socket is opened.
func TestClusterAddrs(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		nodes, base, peerBase int
		http, peer, err       string
	}{
		{"default", 3, 7000, 0, "127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003", "127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103", ""},
		{"peers just above", 3, 17600, 17610, "127.0.0.1:17601 127.0.0.1:17602 127.0.0.1:17603", "127.0.0.1:17611 127.0.0.1:17612 127.0.0.1:17613", ""},
		{"peers just below", 3, 17603, 17600, "127.0.0.1:17604 127.0.0.1:17605 127.0.0.1:17606", "127.0.0.1:17601 127.0.0.1:17602 127.0.0.1:17603", ""},
		{"peers on the HTTP ports", 3, 17600, 17600, "", "", "overlap the HTTP ports 17601..17603"},
		{"peers overlapping from above", 3, 17600, 17602, "", "", "ports 17603..17605 overlap"},
		{"peers overlapping from below", 3, 17600, 17598, "", "", "ports 17599..17601 overlap"},
		{"base too low", 3, 80, 0, "", "", "--base-port must be"},
		{"peer base too low", 3, 7000, 80, "", "", "--peer-base-port must be"},
		{"peer base too high", 3, 7000, 65533, "", "", "--peer-base-port must be 1024..65532"},
	} {
		http, peer, err := clusterAddrs(tc.nodes, tc.base, tc.peerBase)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(http, " ") != tc.http || strings.Join(peer, " ") != tc.peer {
			t.Errorf("%s: got %v %v %v, want %s / %s", tc.name, http, peer, err, tc.http, tc.peer)
		}
	}
}

func TestLeaderless(t *testing.T) {
	for _, tc := range []struct {
		health string
		want   []uint64
	}{
		{`{"groups":[{"id":1,"leader":2},{"id":2,"leader":1}],"ok":true}`, nil},
		{`{"groups":[{"id":1,"leader":2},{"id":2,"leader":0},{"id":4}],"ok":true}`, []uint64{2, 4}},
		{`{"groups":[],"ok":true}`, []uint64{0}},
		{`{"ok":true}`, []uint64{0}},
	} {
		var h map[string]any
		if err := json.Unmarshal([]byte(tc.health), &h); err != nil {
			t.Fatal(err)
		}
		if got := leaderless(h); !slices.Equal(got, tc.want) {
			t.Errorf("%s: leaderless %v, want %v", tc.health, got, tc.want)
		}
	}
}
