package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// volumeServers is how many volume servers a cluster has: three, so that
// replication 002 (three copies on three servers of one rack) can place
// every volume, as tessera keeps three replicas of every chunk.
const volumeServers = 3

// weedProc is one process of the cluster: its name and its arguments.
type weedProc struct {
	name string
	args []string
}

// clusterLayout is the processes of a cluster under dir with ports from
// base: the master on base, volume server i (1-based) on base+i, the filer
// on base+volumeServers+1, each with its gRPC port 10 above (SeaweedFS's
// own default is 10000 above, outside the ports a benchmark may use, so
// every address names it: "ip:port.grpcport"). Every process binds
// 127.0.0.1 only, the master sends no telemetry, and every file a process
// writes is under dir. A volume server stops at once on SIGTERM rather
// than after its default 10 s of notice, which only matters between rounds.
func clusterLayout(weed, dir string, base, maxMB int) []weedProc {
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d.%d", port, port+10) }
	common := func(port int) []string {
		return []string{"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + strconv.Itoa(port), "-port.grpc=" + strconv.Itoa(port+10)}
	}
	procs := []weedProc{{"master", append([]string{"master", "-mdir=" + filepath.Join(dir, "master"),
		"-peers=none", "-defaultReplication=002", "-telemetry=false"}, common(base)...)}}
	for i := 1; i <= volumeServers; i++ {
		procs = append(procs, weedProc{fmt.Sprintf("volume-%d", i), append([]string{"volume",
			"-dir=" + filepath.Join(dir, fmt.Sprintf("volume-%d", i)), "-master=" + addr(base),
			"-preStopSeconds=0"}, common(base+i)...)})
	}
	filer := base + volumeServers + 1
	procs = append(procs, weedProc{"filer", append([]string{"filer", "-master=" + addr(base),
		"-defaultStoreDir=" + filepath.Join(dir, "filer"), "-localSocket=" + filepath.Join(dir, "filer.sock"),
		"-defaultReplicaPlacement=002", "-maxMB=" + strconv.Itoa(maxMB)}, common(filer)...)})
	for i := range procs {
		procs[i].args = append([]string{weed}, procs[i].args...)
	}
	return procs
}

// clusterMain starts the processes (the master first, the filer last),
// waits until the filer stores a file with three copies, prints the filer's
// endpoint and every process id, and stops them all on SIGINT or SIGTERM.
func clusterMain(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	weed := fs.String("weed", "", "the weed binary (built from ./weed); required")
	dir := fs.String("dir", "", "directory for every process's data (DIR/NAME) and log (DIR/NAME.log); required")
	basePort := fs.Int("base-port", 17620, "the master on base-port, volume server N on base-port+N, the filer on base-port+4; gRPC 10 above each (127.0.0.1)")
	maxMB := fs.Int("max-mb", 4, "the filer's -maxMB: files are split into chunks of this many MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *weed == "" || *dir == "":
		return errors.New("cluster: --weed and --dir are required")
	case *basePort < 1024 || *basePort+volumeServers+11 > 65535:
		return errors.New("cluster: --base-port must be 1024..65520")
	case *maxMB < 1 || *maxMB > 256:
		return errors.New("cluster: --max-mb must be 1..256")
	case fs.NArg() > 0:
		return fmt.Errorf("cluster: unexpected arguments %q", fs.Args())
	}
	// Each process runs in its own directory: the paths it is given must
	// not depend on the working directory.
	for _, p := range []*string{weed, dir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		*p = abs
	}
	for p := *basePort; p <= *basePort+volumeServers+11; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return fmt.Errorf("cluster: port %d is taken (use --base-port): %w", p, err)
		}
		ln.Close()
	}
	// Catch signals before the first process starts, so that none is orphaned.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	layout := clusterLayout(*weed, *dir, *basePort, *maxMB)
	procs := make([]*exec.Cmd, len(layout))
	exited := make(chan int, len(layout))
	for i, p := range layout {
		if err := os.MkdirAll(filepath.Join(*dir, p.name), 0o755); err != nil {
			stopAll(procs)
			return err
		}
		logPath := filepath.Join(*dir, p.name+".log")
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			stopAll(procs)
			return err
		}
		c := exec.Command(p.args[0], p.args[1:]...)
		// The working directory is the process's own: a filer reads a
		// filer.toml from there first, and none must be found.
		c.Dir = filepath.Join(*dir, p.name)
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			logf.Close()
			stopAll(procs)
			return fmt.Errorf("cluster: start %s: %w", p.name, err)
		}
		procs[i] = c
		go func() { _ = c.Wait(); logf.Close(); exited <- i }()
	}
	filer := fmt.Sprintf("127.0.0.1:%d", *basePort+volumeServers+1)
	if err := waitFiler(ctx, filer, exited, layout); err != nil {
		stopAll(procs)
		return fmt.Errorf("cluster: %w (logs in %s)", err, *dir)
	}
	var pids []string
	for i, p := range layout {
		fmt.Printf("%s: pid %d (data %s)\n", p.name, procs[i].Process.Pid, filepath.Join(*dir, p.name))
		pids = append(pids, fmt.Sprintf("%s=%d", p.name, procs[i].Process.Pid))
	}
	fmt.Printf("processes: %s\n", strings.Join(pids, " "))
	fmt.Printf("endpoints: %s\n", filer)
	fmt.Println("cluster up; Ctrl-C stops it")
	for {
		select {
		case <-ctx.Done():
			fmt.Println("stopping cluster")
			stopAll(procs)
			return nil
		case i := <-exited:
			fmt.Fprintf(os.Stderr, "%s exited; see %s\n", layout[i].name, filepath.Join(*dir, layout[i].name+".log"))
		}
	}
}

// waitFiler puts a small file through the filer until a put succeeds (the
// master then knows all three volume servers and has grown volumes with
// three copies), for at most two minutes.
func waitFiler(ctx context.Context, filer string, exited <-chan int, layout []weedProc) error {
	c := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + filer + "/seaweedbench/ready"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := putOnce(ctx, c, url, []byte("ready"))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the filer stored no file within two minutes: %w", err)
		}
		select {
		case i := <-exited:
			return fmt.Errorf("%s exited during start", layout[i].name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// putOnce PUTs body at url and wants 201 Created (or 200 OK for a
// replaced file).
func putOnce(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	return drain(resp, http.StatusCreated, http.StatusOK)
}

// stopAll sends SIGTERM to every started process and kills those still
// running after 15 s.
func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		if p != nil && p.Process != nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range procs {
		if p == nil || p.Process == nil {
			continue
		}
		for time.Now().Before(deadline) && p.Process.Signal(syscall.Signal(0)) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}
