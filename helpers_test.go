package flawless_test

import "regexp"

// mustCompileBad panics inside package regexp; the engine must blame this
// line, the caller in the repository.
func mustCompileBad() *regexp.Regexp {
	//lint:ignore SA1000 the test needs this panic
	return regexp.MustCompile("(")
}
