package align

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used. On a shared machine the
// wall time of a benchmark depends on other load; sentences per CPU second does much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
