package main

import "testing"

// TestClusterPorts checks member i's addresses: clients on base+i, peers
// on the peer base+i, which need not be base+100 (a port range shared
// with other clusters).
func TestClusterPorts(t *testing.T) {
	tests := []struct {
		base, peerBase, i    int
		wantClient, wantPeer string
	}{
		{23000, 23100, 1, "127.0.0.1:23001", "127.0.0.1:23101"},
		{17520, 17580, 3, "127.0.0.1:17523", "127.0.0.1:17583"},
	}
	for _, tc := range tests {
		c, p := clusterPorts(tc.base, tc.peerBase, tc.i)
		if c != tc.wantClient || p != tc.wantPeer {
			t.Errorf("clusterPorts(%d, %d, %d) = %s, %s; want %s, %s", tc.base, tc.peerBase, tc.i, c, p, tc.wantClient, tc.wantPeer)
		}
	}
}
