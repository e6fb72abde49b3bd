//go:build race

package engine

// raceEnabled: the race detector is on. It makes sync.Pool drop items at
// random, so allocation counts mean nothing under it.
const raceEnabled = true
