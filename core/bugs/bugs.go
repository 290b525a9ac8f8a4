// Package bugs says whether this build can inject the testbed's known
// defects (built with -tags tesserabugs, for testing the simulator and the
// chaos harness only). Every injected defect in the core and the server is
// guarded by CompiledIn, a constant, so that production builds compile the
// defects out.
package bugs
