package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/server/httpclient"
)

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "measure a running cluster"}
	var (
		endpoints, size, path string
		count                 int
	)
	pg := &cobra.Command{
		Use:   "put-get",
		Short: "put then get one large random file and report MB/s",
		Long: `Put a file of --size random bytes to the cluster at --endpoints, read it back,
check that the bytes match, and print the throughput of each, --count times.
The figures in docs/performance.md come from this command.`,
		Example: `  tessera bench put-get --size 256MiB --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(size)
			if err != nil || n <= 0 {
				return fmt.Errorf("--size: bad size %q", size)
			}
			ff := fileFlags{endpoints: endpoints}
			c, err := ff.client()
			if err != nil {
				return err
			}
			data := make([]byte, n)
			r := rand.New(rand.NewPCG(1, 2))
			for i := 0; i+8 <= len(data); i += 8 {
				v := r.Uint64()
				for j := 0; j < 8; j++ {
					data[i+j] = byte(v >> (8 * j))
				}
			}
			want := sha256.Sum256(data)
			ctx := context.Background()
			mb := float64(n) / 1e6
			for i := 0; i < count; i++ {
				start := time.Now()
				if _, err := c.Put(ctx, path, bytes.NewReader(data), n, httpclient.Cond{}); err != nil {
					return fmt.Errorf("put: %w", err)
				}
				putDur := time.Since(start)
				start = time.Now()
				body, _, err := c.Get(ctx, path, 0, -1)
				if err != nil {
					return fmt.Errorf("get: %w", err)
				}
				h := sha256.New()
				got, err := io.Copy(h, body)
				body.Close()
				if err != nil {
					return fmt.Errorf("get: %w", err)
				}
				getDur := time.Since(start)
				if got != n || !bytes.Equal(h.Sum(nil), want[:]) {
					return fmt.Errorf("get returned %d bytes that differ from the %d put", got, n)
				}
				fmt.Printf("run %d: put %.1f MB in %s = %.1f MB/s; get %s = %.1f MB/s\n", i+1, mb,
					putDur.Round(time.Millisecond), mb/putDur.Seconds(), getDur.Round(time.Millisecond), mb/getDur.Seconds())
			}
			return nil
		},
	}
	pg.Flags().StringVar(&endpoints, "endpoints", "", "node HTTP addresses (default $TESSERA_ENDPOINTS or 127.0.0.1:7001)")
	pg.Flags().StringVar(&size, "size", "256MiB", "file size")
	pg.Flags().StringVar(&path, "path", "/bench/put-get", "file path to use")
	pg.Flags().IntVar(&count, "count", 3, "repetitions")
	cmd.AddCommand(pg)
	return cmd
}
