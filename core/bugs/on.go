//go:build tesserabugs

package bugs

// CompiledIn reports whether this build can inject defects.
const CompiledIn = true
