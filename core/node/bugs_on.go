//go:build tesserabugs

package node

// BugsCompiledIn reports whether this build can inject the Bugs defects
// (built with -tags tesserabugs, for testing the simulator only).
const BugsCompiledIn = true
