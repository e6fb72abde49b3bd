// Package bench holds side-by-side benchmarks of ssebridge against other Go
// Server-Sent Events libraries. It is a module of its own so that those
// libraries never become dependencies of github.com/ssebridge/ssebridge.
// Everything is in the _test.go files; see README.md for how to run them.
package bench
