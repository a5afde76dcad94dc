package bench

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// machineBusy is the CPU time every process on the machine has spent so far
// (user, nice, system, irq and softirq in /proc/stat; idle, iowait and the
// time the hypervisor stole are left out), or false where there is no
// /proc/stat. Taken around a timed run and divided by its requests, it
// gives the CPU each request costs across the benchmark process, the
// plugin and redis-server together: a steadier measure than req/s on a
// shared machine, whose noise mostly moves wall time.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 8 || string(f[0]) != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += v
	}
	const userHZ = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(ticks) * (time.Second / userHZ), true
}
