//go:build !tesserabugs

package bugs

// CompiledIn reports whether this build can inject defects: never in a
// production build.
const CompiledIn = false
