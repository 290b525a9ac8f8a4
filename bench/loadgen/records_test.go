package loadgen

import (
	"strings"
	"testing"
)

func TestReadRecords(t *testing.T) {
	recs, err := ReadRecords(strings.NewReader("\n" + `{"round":2,"system":"tessera","op":"rss","procs":["node-1","node-2"],"rss_mib":[10,20]}` + "\n\n"))
	if err != nil || len(recs) != 1 || recs[0].Round != 2 || recs[0].RSSMiB[1] != 20 {
		t.Fatalf("got %+v, %v", recs, err)
	}
	for _, bad := range []string{
		"not json\n",
		`{"system":"etcd"}` + "\n",
		`{"round":1}` + "\n",
		`{"round":1,"system":"tessera","op":"rss","procs":["node-1"],"rss_mib":[1,2]}` + "\n",
	} {
		if _, err := ReadRecords(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		vals []float64
		want string
	}{
		{nil, "–"},
		{[]float64{1234.4}, "1234"},
		{[]float64{3, 1, 2}, "2.00 (1.00–3.00)"},
		{[]float64{10, 20, 40, 30}, "25.0 (10.0–40.0)"},
		{[]float64{-150, 50}, "-50.0 (-150–50.0)"},
	} {
		var s Spread
		for _, v := range tc.vals {
			s.Add(v)
		}
		if got := s.String(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.vals, got, tc.want)
		}
	}
	if Sum([]int64{1, 2, 3}) != 6 || Sum(nil) != 0 {
		t.Error("Sum")
	}
}
