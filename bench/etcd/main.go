// Command etcdbench runs etcd next to tessera for bench/compare.sh: a local
// three-member etcd cluster (each member its own process, as tessera's
// nodes are) and the closed-loop small-operation load of
// `tessera bench small`, with the same output, against it. It lives in its
// own Go module so that tessera itself never depends on etcd.
//
//	etcdbench cluster --dir DIR [--members 3] [--base-port 23000]
//	etcdbench small --endpoints A,B,C [--clients 16] [--size 256B] [--duration 10s] [--op put|get] [--json]
//	etcdbench report RESULTS.jsonl
//
// Every address it uses is on 127.0.0.1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage:
  etcdbench cluster [flags]   start a local etcd cluster, one process per member, until SIGINT/SIGTERM
  etcdbench small [flags]     closed-loop small puts or linearizable gets against etcd
  etcdbench report FILE       markdown tables from bench/compare.sh's JSON lines
  etcdbench member [flags]    one member (started by cluster)
Run 'etcdbench COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "cluster":
		err = clusterMain(args)
	case "member":
		err = memberMain(args)
	case "small":
		err = smallMain(args)
	case "report":
		err = reportMain(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "etcdbench: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(1)
	}
}
