//go:build !tesserabugs

package node

// BugsCompiledIn reports whether this build can inject the Bugs defects.
// Production builds cannot: every bug path is guarded by this constant and
// compiled out.
const BugsCompiledIn = false
