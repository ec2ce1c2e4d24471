//go:build race

package agent

// raceEnabled: the race detector drops some objects put in a sync.Pool.
const raceEnabled = true
