// Command tessera is the one binary of tessera: the node, a local cluster
// launcher, the file CLI, the simulator and the benchmarks. docs/cli.md
// describes every subcommand; `tessera <command> --help` prints the same.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	root := &cobra.Command{
		Use:           "tessera",
		Short:         "tessera: a distributed file store built to be proven",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(nodeCmd(), clusterCmd(), simCmd(), chaosCmd(), benchCmd())
	addFileCmds(root)
	err := root.Execute()
	stopProfile()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "tessera:", err)
		os.Exit(1)
	}
}
