package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Encode writes the schedule in the form Parse reads: space-separated
// key=value settings and a comma-separated fault list, e.g.
//
//	delay=1ms..5ms disk=100µs..2ms drop=0.02 torn until=36s faults=crash@1.5s:n2/3s,partition@4s:1+2:oneway/2s
func (s Schedule) Encode() string {
	m := s.Mix
	parts := []string{fmt.Sprintf("delay=%s..%s", m.DelayMin, m.DelayMax)}
	if m.DiskMax > 0 {
		parts = append(parts, fmt.Sprintf("disk=%s..%s", m.DiskMin, m.DiskMax))
	}
	f := func(k string, v float64) {
		if v > 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	f("long", m.LongDelayRate)
	f("drop", m.DropRate)
	f("dup", m.DupRate)
	f("readflip", m.ReadFlipRate)
	f("eio", m.IOErrRate)
	f("enospc", m.NoSpaceRate)
	f("skew", m.ClockSkew)
	if m.SlowFsync > 0 {
		parts = append(parts, "slowfsync="+m.SlowFsync.String())
	}
	if m.TornWrites {
		parts = append(parts, "torn")
	}
	if m.EagerNames {
		parts = append(parts, "eagernames")
	}
	parts = append(parts, "until="+s.FaultsUntil.String())
	fs := make([]string, len(s.Faults))
	for i, ft := range s.Faults {
		fs[i] = ft.String()
	}
	parts = append(parts, "faults="+strings.Join(fs, ","))
	return strings.Join(parts, " ")
}

// ParseSchedule reads a schedule written by Encode.
func ParseSchedule(text string) (Schedule, error) {
	var s Schedule
	for _, tok := range strings.Fields(text) {
		k, v, _ := strings.Cut(tok, "=")
		var err error
		switch k {
		case "delay":
			a, b, ok := strings.Cut(v, "..")
			if !ok {
				return s, fmt.Errorf("sim: delay wants MIN..MAX, got %q", v)
			}
			if s.Mix.DelayMin, err = time.ParseDuration(a); err == nil {
				s.Mix.DelayMax, err = time.ParseDuration(b)
			}
		case "disk":
			a, b, ok := strings.Cut(v, "..")
			if !ok {
				return s, fmt.Errorf("sim: disk wants MIN..MAX, got %q", v)
			}
			if s.Mix.DiskMin, err = time.ParseDuration(a); err == nil {
				s.Mix.DiskMax, err = time.ParseDuration(b)
			}
		case "long":
			s.Mix.LongDelayRate, err = strconv.ParseFloat(v, 64)
		case "drop":
			s.Mix.DropRate, err = strconv.ParseFloat(v, 64)
		case "dup":
			s.Mix.DupRate, err = strconv.ParseFloat(v, 64)
		case "readflip":
			s.Mix.ReadFlipRate, err = strconv.ParseFloat(v, 64)
		case "eio":
			s.Mix.IOErrRate, err = strconv.ParseFloat(v, 64)
		case "enospc":
			s.Mix.NoSpaceRate, err = strconv.ParseFloat(v, 64)
		case "skew":
			s.Mix.ClockSkew, err = strconv.ParseFloat(v, 64)
		case "slowfsync":
			s.Mix.SlowFsync, err = time.ParseDuration(v)
		case "torn":
			s.Mix.TornWrites = true
		case "eagernames":
			s.Mix.EagerNames = true
		case "until":
			s.FaultsUntil, err = time.ParseDuration(v)
		case "faults":
			if v == "" {
				continue
			}
			for _, ft := range strings.Split(v, ",") {
				f, perr := parseFault(ft)
				if perr != nil {
					return s, perr
				}
				s.Faults = append(s.Faults, f)
			}
		default:
			return s, fmt.Errorf("sim: unknown schedule setting %q", tok)
		}
		if err != nil {
			return s, fmt.Errorf("sim: schedule setting %q: %w", tok, err)
		}
	}
	m := s.Mix
	for _, r := range []float64{m.LongDelayRate, m.DropRate, m.DupRate, m.ReadFlipRate, m.IOErrRate, m.NoSpaceRate, m.ClockSkew} {
		if r < 0 || r > 1 {
			return s, fmt.Errorf("sim: schedule rate %v outside 0..1", r)
		}
	}
	if m.DelayMin < 0 || m.DelayMax < m.DelayMin || m.DiskMin < 0 || m.DiskMax < m.DiskMin || m.SlowFsync < 0 || s.FaultsUntil < 0 {
		return s, fmt.Errorf("sim: schedule %q: negative or inverted duration", text)
	}
	return s, nil
}

// Validate checks that every fault names nodes of a cluster of n nodes.
func (s Schedule) Validate(n int) error {
	for _, f := range s.Faults {
		nodes := f.Nodes
		switch {
		case f.Kind.anyNode():
			continue
		case f.Kind != Partition:
			nodes = []int{f.Node}
		}
		for _, id := range nodes {
			if id < 1 || id > n {
				return fmt.Errorf("sim: fault %s names node %d of a %d-node cluster", f, id, n)
			}
		}
	}
	return nil
}

func parseFault(text string) (Fault, error) {
	var f Fault
	bad := func(why string) (Fault, error) { return f, fmt.Errorf("sim: fault %q: %s", text, why) }
	head, dur, hasDur := strings.Cut(text, "/")
	if hasDur {
		d, err := time.ParseDuration(dur)
		if err != nil {
			return bad(err.Error())
		}
		f.Dur = d
	}
	fields := strings.Split(head, ":")
	kind, at, ok := strings.Cut(fields[0], "@")
	if !ok {
		return bad("want KIND@TIME")
	}
	f.Kind = FaultKind(kind)
	t, err := time.ParseDuration(at)
	if err != nil {
		return bad(err.Error())
	}
	f.At = t
	if t < 0 || f.Dur < 0 {
		return bad("negative time")
	}
	if f.Kind.anyNode() {
		if len(fields) != 1 {
			return bad("names no node")
		}
		return f, nil
	}
	switch f.Kind {
	case Crash, Pause, Clog, BitRot, StageRot, DiskStall, Lose, Wipe, AckCrash, VoteCrash, LogRot, LostWrite, Misdirect, Latent, ReadErr, ChunkLoss,
		ClockAhead, ClockBack:
		if len(fields) != 2 || !strings.HasPrefix(fields[1], "n") {
			return bad("want :nID")
		}
		n, err := strconv.Atoi(fields[1][1:])
		if err != nil || n < 1 {
			return bad("bad node")
		}
		f.Node = n
	case Partition:
		if len(fields) < 2 {
			return bad("want :A+B")
		}
		for _, p := range strings.Split(fields[1], "+") {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 {
				return bad("bad node list")
			}
			f.Nodes = append(f.Nodes, n)
		}
		f.OneWay = len(fields) > 2 && fields[2] == "oneway"
	default:
		return bad("unknown kind")
	}
	return f, nil
}
