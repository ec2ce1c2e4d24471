//go:build !unix

package otel

func cpuTime() (int64, bool) { return 0, false }
