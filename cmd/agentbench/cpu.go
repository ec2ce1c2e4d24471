package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// selfCPU is this process's user plus system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time process pid has used so far: the sum over its
// threads of /proc/PID/task/TID/schedstat (nanoseconds on CPU), which is
// precise to the nanosecond; where schedstat is missing, utime+stime from
// /proc/PID/stat (10 ms ticks). Go runtimes keep their threads, so the sum
// over live threads is the process's total. 0 for pid 0 or on error.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	base := filepath.Join("/proc", strconv.Itoa(pid))
	if tasks, err := os.ReadDir(filepath.Join(base, "task")); err == nil {
		var sum time.Duration
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(filepath.Join(base, "task", t.Name(), "schedstat"))
			if err != nil {
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			ns, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			sum += time.Duration(ns)
		}
		if ok && len(tasks) > 0 {
			return sum
		}
	}
	b, err := os.ReadFile(filepath.Join(base, "stat"))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces: fields count from
	// the closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * clockTick
}

// procSyscalls is the number of read and write system calls process pid
// (0: this process) has made so far, from /proc/PID/io (syscr + syscw); 0
// where that is unavailable. Per event, it shows how well writes batch.
func procSyscalls(pid int) uint64 {
	path := "/proc/self/io"
	if pid > 0 {
		path = filepath.Join("/proc", strconv.Itoa(pid), "io")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err == nil {
			n += x
		}
	}
	return n
}
