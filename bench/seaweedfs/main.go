// Command seaweedbench runs SeaweedFS next to tessera for bench/compare.sh
// (BENCH_SEAWEED=1): a local SeaweedFS cluster (one master, three volume
// servers keeping three copies of every volume, one filer, each its own
// process), the closed-loop small-file load of `tessera bench small` and
// the large put and get of `tessera bench put-get` through the filer's HTTP
// API, with the same JSON lines, and the tables that set them side by side.
//
//	seaweedbench cluster --weed BIN --dir DIR [--base-port 17620] [--max-mb 4]
//	seaweedbench small --endpoints FILER [--clients 16] [--size 256B] [--duration 10s] [--op put|get] [--fsync] [--json]
//	seaweedbench put-get --endpoints FILER [--size 256MiB] [--path P] [--fsync] [--json]
//	seaweedbench report RESULTS.jsonl
//
// The weed binary comes from the module in ./weed, which requires SeaweedFS
// as a tool; this module uses only the standard library, so that it can be
// vetted and tested without fetching SeaweedFS's dependencies. Every address
// it uses is on 127.0.0.1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage:
  seaweedbench cluster [flags]   start a local SeaweedFS cluster (master, 3 volume servers, filer) until SIGINT/SIGTERM
  seaweedbench small [flags]     closed-loop small puts or gets through the filer
  seaweedbench put-get [flags]   one large put, then its get, through the filer
  seaweedbench report FILE       markdown tables of tessera beside SeaweedFS from bench/compare.sh's JSON lines
Run 'seaweedbench COMMAND -h' for a command's flags.
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
	case "small":
		err = smallMain(args)
	case "put-get":
		err = putGetMain(args)
	case "report":
		err = reportMain(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "seaweedbench: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "seaweedbench:", err)
		os.Exit(1)
	}
}
