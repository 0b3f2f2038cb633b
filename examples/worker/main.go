// Command worker is a background worker instrumented with Flawless: each
// job runs in a goroutine protected by client.Go, a failing job is
// reported and the worker goes on.
//
//	go run ./cmd/flawless-server &
//	go run ./examples/worker
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/flawless-go/flawless/client"
)

func main() {
	server := flag.String("server", "http://localhost:9028", "flawless-server to report to")
	jobs := flag.Int("jobs", 20, "jobs to run")
	flag.Parse()
	rep, err := client.NewRemote(client.RemoteConfig{URLs: []string{*server}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var wg sync.WaitGroup
	for i := range *jobs {
		wg.Add(1)
		jobCtx := client.WithValues(ctx, "job", i)
		// Swallow: a failed job is reported, and the worker carries on.
		client.Go(jobCtx, rep, func() {
			defer wg.Done()
			process(i)
		}, client.Swallow())
	}
	wg.Wait()
	fmt.Println("done; delivering reports")
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rep.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "some reports were not delivered:", err)
	}
	fmt.Printf("%+v\n", rep.Stats())
}

func process(i int) {
	var weights map[string]int
	if i%5 == 4 {
		//lint:ignore SA5000 the example's bug, on purpose
		weights["job"] = i // every fifth job writes to a nil map
	}
	time.Sleep(10 * time.Millisecond)
}
