package model

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tlcConfig is what a .cfg file sets: its constants (a set counts its
// elements) and the properties it lists, invariants and temporal ones.
type tlcConfig struct {
	constants  map[string]int
	properties []string
}

func readCfg(t *testing.T, name string) tlcConfig {
	t.Helper()
	f, err := os.Open("../" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := tlcConfig{constants: map[string]int{}}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, `\*`); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "CONSTANTS", "INVARIANTS", "PROPERTIES", "SPECIFICATION", "CHECK_DEADLOCK":
			section, fields = fields[0], fields[1:]
		}
		switch section {
		case "CONSTANTS":
			if len(fields) == 0 {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: constant line %q", name, line)
			}
			v = strings.TrimSpace(v)
			if strings.HasPrefix(v, "{") {
				cfg.constants[strings.TrimSpace(k)] = len(strings.Split(strings.Trim(v, "{}"), ","))
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: constant line %q: %v", name, line, err)
			}
			cfg.constants[strings.TrimSpace(k)] = n
		case "INVARIANTS", "PROPERTIES":
			cfg.properties = append(cfg.properties, fields...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// names are the distinct property names a model checks, TLC's TypeOK
// (Go's types) included.
func names[S comparable](spec Spec[S], liveness bool) []string {
	out := []string{"TypeOK"}
	for _, inv := range spec.Invariants {
		out = append(out, inv.Name)
	}
	for _, st := range spec.Steps {
		out = append(out, st.Name)
	}
	if liveness {
		for _, p := range spec.Liveness {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestCfgMatchesModels: each .cfg sets the constants of the Go bounds that
// stand for it, and lists the properties the Go model checks (the
// temporal ones only where the cfg is meant to check them), so that the
// state counts TLC reports are comparable with the explorer's.
func TestCfgMatchesModels(t *testing.T) {
	fc := func(c FileCommitConfig) map[string]int {
		return map[string]int{"Clients": c.Clients, "Paths": c.Paths, "NumIds": c.IDs, "NumData": c.Data,
			"MaxTime": int(c.MaxTime), "Lease": int(c.Lease), "MaxSeq": int(c.MaxSeq), "MaxRequests": int(c.MaxRequests),
			"MaxReuse": int(c.MaxReuse), "Threshold": int(c.Threshold), "Cap": int(c.Cap)}
	}
	rr := map[string]int{"NumNodes": DefaultReplica.Nodes, "Replicas": DefaultReplica.Replicas,
		"NumChunks": DefaultReplica.Chunks, "MaxFailures": DefaultReplica.Failures}
	tests := []struct {
		cfg       string
		constants map[string]int
		props     []string
	}{
		{"FileCommit.cfg", fc(DefaultFileCommit), names(FileCommit(DefaultFileCommit), false)},
		{"FileCommitLiveness.cfg", fc(SmallFileCommit), names(FileCommit(SmallFileCommit), true)},
		{"ReplicaReplacement.cfg", rr, names(Replica(DefaultReplica), true)},
	}
	for _, tt := range tests {
		got := readCfg(t, tt.cfg)
		for k, v := range tt.constants {
			if got.constants[k] != v {
				t.Errorf("%s: %s = %d, the Go bounds have %d", tt.cfg, k, got.constants[k], v)
			}
		}
		if len(got.constants) != len(tt.constants) {
			t.Errorf("%s sets %d constants, want %d", tt.cfg, len(got.constants), len(tt.constants))
		}
		props := slices.Clone(got.properties)
		slices.Sort(props)
		if !slices.Equal(props, tt.props) {
			t.Errorf("%s lists %v, want %v", tt.cfg, props, tt.props)
		}
	}
}
