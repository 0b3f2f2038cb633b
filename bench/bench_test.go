// Package bench measures the client against a bare deferred recover and
// against sentry-go, side by side in one run. It is a module of its own so
// that the library never depends on a peer SDK.
package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flawless-go/flawless/client"
	"github.com/flawless-go/flawless/report"
	"github.com/getsentry/sentry-go"
)

var sink int

//go:noinline
func work(n int) int { return n * 2 }

// BenchmarkDeferNoPanic: the cost of the protection on the path that does
// not panic.
func BenchmarkDeferNoPanic(b *testing.B) {
	ctx := context.Background()
	rep := discard{}
	b.Run("bare-recover", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			func() {
				defer func() { recover() }()
				sink = work(i)
			}()
		}
	})
	b.Run("flawless-Recover", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			func() {
				defer client.Recover(ctx, rep)
				sink = work(i)
			}()
		}
	})
}

type discard struct{}

func (discard) Report(context.Context, *report.Report) error { return nil }

// sentryDiscard is a sentry transport that drops events.
type sentryDiscard struct{ n atomic.Int64 }

func (t *sentryDiscard) Flush(time.Duration) bool              { return true }
func (t *sentryDiscard) FlushWithContext(context.Context) bool { return true }
func (t *sentryDiscard) Configure(sentry.ClientOptions)        {}
func (t *sentryDiscard) SendEvent(*sentry.Event)               { t.n.Add(1) }
func (t *sentryDiscard) Close()                                {}

// acceptAll is a flawless-server stand-in that takes everything.
func acceptAll(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

//go:noinline
func handler(fail bool) {
	if fail {
		panic(errors.New("cart is empty"))
	}
}

// BenchmarkCaptureAndEnqueue: recovering a panic and handing it to the
// SDK's delivery, flawless's remote reporter against sentry-go's hub with a
// transport that discards, same run.
func BenchmarkCaptureAndEnqueue(b *testing.B) {
	ctx := context.Background()
	b.Run("sentry-go", func(b *testing.B) {
		tr := &sentryDiscard{}
		c, err := sentry.NewClient(sentry.ClientOptions{Transport: tr, Dsn: ""})
		if err != nil {
			b.Fatal(err)
		}
		hub := sentry.NewHub(c, sentry.NewScope())
		b.ReportAllocs()
		for b.Loop() {
			func() {
				defer func() {
					if v := recover(); v != nil {
						hub.Recover(v)
					}
				}()
				handler(true)
			}()
		}
	})
	b.Run("flawless", func(b *testing.B) {
		r, err := client.NewRemote(client.RemoteConfig{URLs: []string{acceptAll(b).URL}, QueueSize: 1 << 16})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close(ctx)
		b.ReportAllocs()
		for b.Loop() {
			func() {
				defer client.Recover(ctx, r, client.Swallow())
				handler(true)
			}()
		}
	})
}

// TestStormOfIdenticalPanics: a million identical panics across 8
// goroutines send about 30 reports, and their counts add up exactly.
func TestStormOfIdenticalPanics(t *testing.T) {
	var mu sync.Mutex
	requests, total := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs, err := report.Decode(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		requests += len(rs)
		for _, x := range rs {
			total += x.Occurrences()
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	r, err := client.NewRemote(client.RemoteConfig{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 125_000
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for range each {
				func() {
					defer client.Recover(context.Background(), r, client.Swallow())
					handler(true)
				}()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d panics in %v: %d reports sent, %d occurrences counted; stats %+v", goroutines*each, elapsed, requests, total, r.Stats())
	if total != goroutines*each {
		t.Errorf("the counts add up to %d, want %d", total, goroutines*each)
	}
	if requests > 32 {
		t.Errorf("%d reports were sent for one error, want about 30", requests)
	}
}
