// Package proc starts child processes that die with the process that
// started them (Linux only), so that a crashed test or tool leaves no
// servers or functions running.
package proc
