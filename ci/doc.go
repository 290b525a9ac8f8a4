// Package ci holds repository-wide checks that run with `make test`: rules
// that no single package's tests can see, such as the determinism rules of
// core/ (ARCHITECTURE rule 1). The CI entry point itself is .ci/run.
package ci
