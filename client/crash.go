package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flawless-go/flawless/report"
)

// CrashConfig configures MonitorCrashes.
type CrashConfig struct {
	// Remote says where the watchdog sends the crash report.
	Remote RemoteConfig
	// Timeout bounds the watchdog's delivery. 0: 30 seconds.
	Timeout time.Duration
}

// watchdogEnv marks the watchdog process.
const watchdogEnv = "FLAWLESS_CRASH_WATCHDOG"

// MonitorCrashes reports the crashes that no recover sees: a panic in a
// goroutine without Recover, and the runtime's fatal errors (concurrent map
// writes, out of memory, all goroutines asleep). Those end a Go program
// before any deferred code runs, so the report is made by a watchdog: this
// program started again as a second process, which reads the crash output
// (runtime/debug.SetCrashOutput) through a pipe and, once this process is
// gone, turns the goroutine trace into a report and delivers it.
//
// Call it first thing in main: in the watchdog process it does not return.
// The crash output still goes to standard error as well.
//
//	func main() {
//		stop, err := client.MonitorCrashes(client.CrashConfig{Remote: client.RemoteConfig{URLs: urls}})
//		if err != nil { log.Print(err) }
//		defer stop()
//		...
//	}
func MonitorCrashes(cfg CrashConfig) (stop func(), err error) {
	if os.Getenv(watchdogEnv) == "1" {
		os.Exit(runWatchdog(cfg, os.NewFile(3, "crash-output")))
	}
	if len(cfg.Remote.URLs) == 0 {
		return func() {}, errors.New("client: MonitorCrashes needs CrashConfig.Remote.URLs")
	}
	exe, err := os.Executable()
	if err != nil {
		return func() {}, fmt.Errorf("client: crash watchdog: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}, fmt.Errorf("client: crash watchdog: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), watchdogEnv+"=1")
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stderr = os.Stderr
	// Its own process group: a Ctrl-C meant for the program does not stop
	// the watchdog before it can report.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return func() {}, fmt.Errorf("client: crash watchdog: %w", err)
	}
	r.Close()
	if err := debug.SetCrashOutput(w, debug.CrashOptions{}); err != nil {
		w.Close()
		cmd.Process.Kill()
		return func() {}, fmt.Errorf("client: crash output: %w", err)
	}
	w.Close() // SetCrashOutput keeps its own copy
	// The watchdog is not waited for: it outlives this process. Its
	// handle is released, for a process handle held open would keep the
	// runtime from ever seeing a deadlock.
	cmd.Process.Release()
	return func() {
		// Closing the crash output ends the watchdog quietly.
		debug.SetCrashOutput(nil, debug.CrashOptions{})
	}, nil
}

// runWatchdog reads the crash output until the program's end and reports a
// crash if there was one. It returns the exit code.
func runWatchdog(cfg CrashConfig, in io.Reader) int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	data, _ := io.ReadAll(io.LimitReader(in, 8<<20))
	rep := ParseCrash(string(data))
	if rep == nil {
		return 0
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	remote, err := NewRemote(cfg.Remote)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flawless crash watchdog:", err)
		return 1
	}
	remote.Report(context.Background(), rep)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := remote.Close(ctx); err != nil || remote.Stats().Sent == 0 {
		fmt.Fprintln(os.Stderr, "flawless crash watchdog: the crash report was not delivered:", err)
		return 1
	}
	return 0
}

// ParseCrash turns the output of a crashed Go program (the "panic:" or
// "fatal error:" line and the goroutine traces) into a report whose stack
// is the failing goroutine's, starting at the first frame outside the
// runtime. It returns nil when the text holds no crash.
func ParseCrash(out string) *report.Report {
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	r := &report.Report{Panic: true}
	start := -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "panic: "):
			r.Message = strings.TrimPrefix(l, "panic: ")
			for _, tag := range []string{" [recovered, repanicked]", " [recovered]"} {
				r.Message = strings.TrimSuffix(r.Message, tag)
			}
			r.Type = "panic"
			if strings.HasPrefix(r.Message, "runtime error: ") {
				r.Type = "runtime.Error"
			}
		case strings.HasPrefix(l, "fatal error: "):
			r.Message, r.Type = strings.TrimPrefix(l, "fatal error: "), "fatal error"
		default:
			continue
		}
		start = i
		break
	}
	// The runtime writes the "fatal error:" line of a fatal error to
	// standard error only, not to the crash output: without a header, the
	// crash is known by its goroutine trace, and its kind read from it.
	first := start + 1
	if start < 0 {
		first = 0
	}
	var frames []report.Frame
	running := false
	found := false
	for i := first; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "goroutine ") || !strings.Contains(lines[i], "[") {
			continue
		}
		if !found {
			frames = parseGoroutine(lines[i+1:])
			found = true
		}
		running = running || strings.Contains(lines[i], "[running]")
	}
	if !found && start < 0 {
		return nil
	}
	if start < 0 {
		r.Type, r.Message = "fatal error", inferFatal(frames, running)
	}
	for len(frames) > 1 && isRuntimeFrame(frames[0].Function) {
		frames = frames[1:]
	}
	if len(frames) == 0 {
		frames = []report.Frame{{Function: "(unknown)", File: "(crash output had no stack)"}}
	}
	r.Frames = frames[:min(len(frames), report.MaxFrames)]
	r.Time = time.Now()
	r.Hostname, _ = os.Hostname()
	r.Build = report.CurrentBuild()
	r.AdditionalInfo = "Reported by the crash watchdog: the program died before any deferred code ran."
	return r
}

// inferFatal names a fatal error from the failing goroutine's frames.
func inferFatal(frames []report.Frame, running bool) string {
	for _, f := range frames {
		switch {
		case strings.HasSuffix(f.Function, "maps.fatal"), strings.Contains(f.Function, "runtime.mapassign"), strings.Contains(f.Function, "runtime.mapaccess"):
			return "concurrent map access (concurrent map writes, or a read during a write)"
		case strings.Contains(f.Function, "runtime.mallocgc"), strings.Contains(f.Function, "allocLarge"), strings.Contains(f.Function, "runtime.(*mheap)"):
			return "out of memory"
		}
	}
	if !running {
		return "all goroutines are asleep - deadlock!"
	}
	return "fatal error (its message went to standard error only)"
}

// parseGoroutine reads one goroutine's frames: a line naming the call and
// a tab-indented "file:line +0x…" line, until a blank line.
func parseGoroutine(lines []string) []report.Frame {
	var frames []report.Frame
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	var fn string
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			break
		}
		if !strings.HasPrefix(l, "\t") {
			fn = l
			if rest, ok := strings.CutPrefix(fn, "created by "); ok {
				fn, _, _ = strings.Cut(rest, " in goroutine ")
			} else if i := strings.LastIndexByte(fn, '('); i > 0 {
				fn = fn[:i]
			}
			continue
		}
		loc := strings.TrimSpace(l)
		if i := strings.LastIndex(loc, " +0x"); i > 0 {
			loc = loc[:i]
		}
		colon := strings.LastIndexByte(loc, ':')
		if colon < 0 {
			continue
		}
		line, _ := strconv.Atoi(loc[colon+1:])
		frames = append(frames, report.Frame{Function: fn, File: loc[:colon], Line: line})
	}
	return frames
}

func isRuntimeFrame(fn string) bool {
	return fn == "panic" || strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/") ||
		strings.HasPrefix(fn, "internal/sync.")
}
