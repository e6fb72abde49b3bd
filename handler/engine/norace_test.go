//go:build !race

package engine

// raceEnabled: the race detector is off; see race_test.go.
const raceEnabled = false
