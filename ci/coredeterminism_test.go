package ci

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports may not appear in core/ outside tests: they reach the
// world (files, sockets, the wall clock, global randomness) behind Env's back.
var forbiddenImports = map[string]string{
	"os":          "files and processes go through env.Env / vfs.FS",
	"os/exec":     "no processes in the core",
	"net":         "the network goes through env.Env.Send",
	"net/http":    "the network goes through env.Env.Send",
	"syscall":     "no system calls in the core",
	"time":        "the core counts ticks; wall time only via env.Env.NowNanos",
	"math/rand":   "randomness only from env.Env.Rand (seeded)",
	"crypto/rand": "randomness only from env.Env.Rand (seeded)",
	"sync":        "the core is single-threaded; one event loop owns a node",
	"unsafe":      "no unsafe in the core",
}

// globalRand are math/rand/v2's package-level functions, which draw from
// the unseeded global source.
var globalRand = map[string]bool{
	"Int": true, "IntN": true, "Int32": true, "Int32N": true, "Int64": true, "Int64N": true,
	"Uint32": true, "Uint32N": true, "Uint64": true, "Uint64N": true, "UintN": true, "Uint": true,
	"Float32": true, "Float64": true, "Perm": true, "Shuffle": true, "N": true, "ExpFloat64": true, "NormFloat64": true,
}

// violations lists the determinism rule breaks in the Go files under root.
func violations(root string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		randName := ""
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[p]; bad {
				out = append(out, fmt.Sprintf("%s: imports %q: %s", fset.Position(imp.Pos()), p, why))
			}
			if p == "math/rand/v2" {
				randName = "rand"
				if imp.Name != nil {
					randName = imp.Name.Name
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				out = append(out, fmt.Sprintf("%s: go statement: the core starts no goroutines", fset.Position(n.Pos())))
			case *ast.SelectStmt:
				out = append(out, fmt.Sprintf("%s: select statement: the core waits on no channels", fset.Position(n.Pos())))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && randName != "" && id.Name == randName && globalRand[n.Sel.Name] {
					out = append(out, fmt.Sprintf("%s: %s.%s draws from the global random source", fset.Position(n.Pos()), id.Name, n.Sel.Name))
				}
			}
			return true
		})
		return nil
	})
	return out, err
}

func TestCoreIsDeterministic(t *testing.T) {
	v, err := violations("../core")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v {
		t.Error(s)
	}
}

// TestCheckerCatches shows the check is not vacuous.
func TestCheckerCatches(t *testing.T) {
	dir := t.TempDir()
	src := `package bad

import (
	"math/rand/v2"
	"time"
)

func f() {
	go func() {}()
	_ = rand.IntN(3)
	_ = time.Now()
	select {}
}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := violations(dir)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(v, "\n")
	for _, want := range []string{`imports "time"`, "go statement", "select statement", "rand.IntN"} {
		if !strings.Contains(joined, want) {
			t.Errorf("checker missed %q; found:\n%s", want, joined)
		}
	}
}
