package node

import "github.com/tessera-db/tessera/core/bugs"

// BugsCompiledIn reports whether this build can inject the Bugs defects
// (built with -tags tesserabugs, for testing the testbed only). Production
// builds cannot: every bug path is guarded by this constant and compiled
// out.
const BugsCompiledIn = bugs.CompiledIn
