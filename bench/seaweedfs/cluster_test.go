package main

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestClusterLayout checks the processes' flags: every listening port and
// every address a process dials lies in base..base+14 on 127.0.0.1, every
// path is under the cluster's directory, the master sends no telemetry,
// and the filer splits files at --max-mb with replication 002.
func TestClusterLayout(t *testing.T) {
	const base, dir = 17620, "/tmp/sw"
	procs := clusterLayout("/bin/weed", dir, base, 4)
	var names []string
	ports := map[int]string{}
	for _, p := range procs {
		names = append(names, p.name)
		if p.args[0] != "/bin/weed" {
			t.Errorf("%s runs %s", p.name, p.args[0])
		}
		args := strings.Join(p.args[1:], " ")
		for _, want := range []string{"-ip=127.0.0.1", "-ip.bind=127.0.0.1"} {
			if !slices.Contains(p.args, want) {
				t.Errorf("%s lacks %s: %s", p.name, want, args)
			}
		}
		for _, m := range regexp.MustCompile(`-(port|port\.grpc)=(\d+)`).FindAllStringSubmatch(args, -1) {
			n, _ := strconv.Atoi(m[2])
			if other, dup := ports[n]; dup {
				t.Errorf("port %d of %s is also %s's", n, p.name, other)
			}
			ports[n] = p.name
			if n < base || n > base+14 {
				t.Errorf("%s listens on %d", p.name, n)
			}
		}
		for _, m := range regexp.MustCompile(`-master=(\S+)`).FindAllStringSubmatch(args, -1) {
			if m[1] != "127.0.0.1:17620.17630" {
				t.Errorf("%s dials the master at %s", p.name, m[1])
			}
		}
		for _, m := range regexp.MustCompile(`-(mdir|dir|defaultStoreDir|localSocket)=(\S+)`).FindAllStringSubmatch(args, -1) {
			if !strings.HasPrefix(m[2], dir+"/") {
				t.Errorf("%s keeps %s at %s", p.name, m[1], m[2])
			}
		}
	}
	if strings.Join(names, " ") != "master volume-1 volume-2 volume-3 filer" {
		t.Errorf("processes %v", names)
	}
	if len(ports) != 10 {
		t.Errorf("%d ports, want 10: %v", len(ports), ports)
	}
	for name, want := range map[string][]string{
		"master": {"-telemetry=false", "-defaultReplication=002", "-peers=none"},
		"filer":  {"-maxMB=4", "-defaultReplicaPlacement=002"},
	} {
		i := slices.IndexFunc(procs, func(p weedProc) bool { return p.name == name })
		for _, w := range want {
			if !slices.Contains(procs[i].args, w) {
				t.Errorf("%s lacks %s", name, w)
			}
		}
	}
}
