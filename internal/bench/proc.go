package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSelf is the CPU time (user + system) this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is the CPU time (user + system) process pid has used, from
// /proc/PID/stat; 0 where there is no /proc.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields are counted from
	// the closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// memOf reads VmRSS and VmHWM (peak RSS) of process pid ("self" for this
// one) from /proc/PID/status, in bytes; zeros where there is no /proc.
func memOf(pid string) (rss, peak uint64) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *uint64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &peak
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			kb, _ := strconv.ParseUint(fs[1], 10, 64)
			*dst = kb << 10
		}
	}
	return rss, peak
}

// heapInUse is the Go heap this process holds in live and not yet swept
// objects, in bytes.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// goStacks returns the goroutines of this process and the memory their
// stacks take.
func goStacks() (goroutines, stackBytes uint64) {
	s := []metrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		goroutines = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		stackBytes = s[1].Value.Uint64()
	}
	return goroutines, stackBytes
}

// loadAverage is the one-minute load average of the machine, or -1.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// memSampler follows this process's RSS and Go heap every period and keeps
// their maxima since the last reset.
type memSampler struct {
	mu       sync.Mutex
	maxRSS   uint64
	maxHeap  uint64
	lastRSS  uint64
	lastHeap uint64
	stop     chan struct{}
	done     chan struct{}
}

func startMemSampler(period time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *memSampler) sample() {
	rss, _ := memOf("self")
	heap := heapInUse()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRSS, s.lastHeap = rss, heap
	s.maxRSS = max(s.maxRSS, rss)
	s.maxHeap = max(s.maxHeap, heap)
}

// reset starts new maxima from the current values.
func (s *memSampler) reset() {
	s.sample()
	s.mu.Lock()
	s.maxRSS, s.maxHeap = s.lastRSS, s.lastHeap
	s.mu.Unlock()
}

// peaks returns the maxima since the last reset, sampling once more first.
func (s *memSampler) peaks() (rss, heap uint64) {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxRSS, s.maxHeap
}

func (s *memSampler) close() {
	close(s.stop)
	<-s.done
}

func numCPU() int { return runtime.NumCPU() }
