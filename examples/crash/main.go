// Command crash dies the way no recover can see: a panic in a goroutine
// nobody protects. client.MonitorCrashes reports it anyway, from a
// watchdog process that reads the crash output.
//
//	go run ./cmd/flawless-server &
//	go run ./examples/crash
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/flawless-go/flawless/client"
)

func main() {
	server := flag.String("server", "http://localhost:9028", "flawless-server to report to")
	flag.Parse()
	stop, err := client.MonitorCrashes(client.CrashConfig{Remote: client.RemoteConfig{URLs: []string{*server}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash monitoring is off:", err)
	}
	defer stop()

	go func() {
		var orders []int
		fmt.Println(orders[3]) // kills the process; the watchdog reports it
	}()
	time.Sleep(time.Second)
}
