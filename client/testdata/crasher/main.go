// Command crasher dies in the ways that no recover sees, under
// client.MonitorCrashes, for the tests of the crash watchdog.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/flawless-go/flawless/client"
)

func main() {
	stop, err := client.MonitorCrashes(client.CrashConfig{
		Remote:  client.RemoteConfig{URLs: []string{os.Getenv("FLAWLESS_TEST_SERVER")}},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	switch os.Args[1] {
	case "goroutine-panic":
		go worker()
		time.Sleep(time.Minute)
	case "map-writes":
		m := map[int]int{}
		for range 4 {
			go func() {
				for j := 0; ; j++ {
					m[j%100] = j
				}
			}()
		}
		time.Sleep(time.Minute)
	case "deadlock":
		ch := make(chan int)
		<-ch
	case "oom":
		syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: 1 << 30, Max: 1 << 30})
		b := make([]byte, 3<<30)
		b[0] = 1
	case "clean":
		stop()
	}
}

func worker() {
	var items []int
	fmt.Println(items[5]) // panics in a goroutine nobody recovers
}
