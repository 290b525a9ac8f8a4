package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/server/httpclient"
)

// fileFlags are the flags shared by the file commands.
type fileFlags struct {
	endpoints string
	ifVersion int64
	timeout   time.Duration
	json      bool
}

func (f *fileFlags) client() (*httpclient.Client, error) {
	return httpclient.New(endpointList(f.endpoints))
}

func (f *fileFlags) cond() httpclient.Cond {
	if f.ifVersion < 0 {
		return httpclient.Cond{}
	}
	return httpclient.Version(uint64(f.ifVersion))
}

func (f *fileFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	if f.timeout <= 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, f.timeout)
	return tctx, func() { cancel(); stop() }
}

func (f *fileFlags) printFile(file httpclient.File) {
	if f.json {
		b, _ := json.Marshal(file)
		fmt.Println(string(b))
		return
	}
	fmt.Printf("%s\tversion %d\t%d bytes\t%s\n", file.Path, file.Version, file.Size, file.MTime.UTC().Format(time.RFC3339Nano))
}

// addFileCmds adds put/get/cat/ls/stat/rm/mv/append.
func addFileCmds(root *cobra.Command) {
	ff := &fileFlags{}
	pf := root.PersistentFlags()
	pf.StringVar(&ff.endpoints, "endpoints", "", "comma-separated node HTTP addresses (default $TESSERA_ENDPOINTS or 127.0.0.1:7001)")
	pf.DurationVar(&ff.timeout, "timeout", 0, "give up after this long (0: no limit)")
	pf.BoolVar(&ff.json, "json", false, "print file records as JSON")
	withCond := func(c *cobra.Command) *cobra.Command {
		c.Flags().Int64Var(&ff.ifVersion, "if-version", -1, "apply only if the file's version is this (0: only if it does not exist)")
		return c
	}
	put := withCond(&cobra.Command{
		Use:   "put PATH [LOCAL|-]",
		Short: "create or replace a file from a local file or stdin",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			return writeCmd(ff, args, false)
		},
	})
	appendCmd := withCond(&cobra.Command{
		Use:   "append PATH [LOCAL|-]",
		Short: "append a local file or stdin to a file (created if missing)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			return writeCmd(ff, args, true)
		},
	})
	var offset, length int64
	var out string
	get := &cobra.Command{
		Use:   "get PATH",
		Short: "read a file (or a byte range) to stdout or -o FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return getCmd(ff, args[0], offset, length, out)
		},
	}
	get.Flags().Int64Var(&offset, "offset", 0, "first byte to read")
	get.Flags().Int64Var(&length, "length", -1, "bytes to read (-1: to the end)")
	get.Flags().StringVarP(&out, "output", "o", "", "write to this local file instead of stdout")
	cat := &cobra.Command{
		Use:   "cat PATH...",
		Short: "print files to stdout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			for _, p := range args {
				if err := getCmd(ff, p, 0, -1, ""); err != nil {
					return err
				}
			}
			return nil
		},
	}
	var limit int
	var long bool
	ls := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "list files whose path starts with PREFIX (all pages)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			return lsCmd(ff, prefix, limit, long)
		},
	}
	ls.Flags().IntVar(&limit, "limit", 0, "stop after this many files (0: all)")
	ls.Flags().BoolVarP(&long, "long", "l", false, "print version, size and mtime")
	stat := &cobra.Command{
		Use:   "stat PATH",
		Short: "print a file's version, size and mtime",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := ff.client()
			if err != nil {
				return err
			}
			ctx, cancel := ff.context()
			defer cancel()
			f, err := c.Stat(ctx, args[0])
			if err != nil {
				return err
			}
			ff.printFile(f)
			return nil
		},
	}
	rm := withCond(&cobra.Command{
		Use:   "rm PATH",
		Short: "delete a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := ff.client()
			if err != nil {
				return err
			}
			ctx, cancel := ff.context()
			defer cancel()
			_, err = c.Delete(ctx, args[0], ff.cond())
			return err
		},
	})
	mv := withCond(&cobra.Command{
		Use:   "mv FROM TO",
		Short: "atomically rename a file, replacing TO",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := ff.client()
			if err != nil {
				return err
			}
			ctx, cancel := ff.context()
			defer cancel()
			f, err := c.Rename(ctx, args[0], args[1], ff.cond())
			if err != nil {
				return err
			}
			ff.printFile(f)
			return nil
		},
	})
	root.AddCommand(put, appendCmd, get, cat, ls, stat, rm, mv)
}

func writeCmd(ff *fileFlags, args []string, isAppend bool) error {
	c, err := ff.client()
	if err != nil {
		return err
	}
	var body io.Reader = os.Stdin
	size := int64(-1)
	if len(args) == 2 && args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		body, size = f, st.Size()
	}
	ctx, cancel := ff.context()
	defer cancel()
	var file httpclient.File
	if isAppend {
		file, err = c.Append(ctx, args[0], body, size, ff.cond())
	} else {
		file, err = c.Put(ctx, args[0], body, size, ff.cond())
	}
	if err != nil {
		return err
	}
	ff.printFile(file)
	return nil
}

func getCmd(ff *fileFlags, path string, offset, length int64, out string) error {
	c, err := ff.client()
	if err != nil {
		return err
	}
	ctx, cancel := ff.context()
	defer cancel()
	body, _, err := c.Get(ctx, path, offset, length)
	if err != nil {
		return err
	}
	defer body.Close()
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func lsCmd(ff *fileFlags, prefix string, limit int, long bool) error {
	c, err := ff.client()
	if err != nil {
		return err
	}
	ctx, cancel := ff.context()
	defer cancel()
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	defer tw.Flush()
	after, n := "", 0
	for {
		page, err := c.List(ctx, prefix, after, 1000)
		if err != nil {
			return err
		}
		for _, f := range page.Files {
			switch {
			case ff.json:
				b, _ := json.Marshal(f)
				fmt.Fprintln(tw, string(b))
			case long:
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", f.Version, f.Size, f.MTime.UTC().Format(time.RFC3339), f.Path)
			default:
				fmt.Fprintln(tw, f.Path)
			}
			n++
			if limit > 0 && n >= limit {
				return nil
			}
		}
		if !page.More {
			return nil
		}
		after = page.NextAfter
	}
}
