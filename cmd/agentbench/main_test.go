package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary act as agentbench's child servers: the
// bench re-executes its own binary (here, the test binary) with
// childCommand to start the baseline server and the slow agent.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(runChild(os.Args[2:]))
	}
	os.Exit(m.Run())
}
