package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"expvar"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flawless-go/flawless/report"
)

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// URLs are the servers, tried in order, each the base URL of a
	// flawless-server ("http://flawless.internal:9028"). Required.
	URLs []string
	// Token is sent as a bearer token (the server's ingest_token).
	Token string
	// QueueSize bounds the reports waiting to be sent; past it reports are
	// dropped and counted. 0: 1000.
	QueueSize int
	// Timeout bounds one request to a server. 0: 5 seconds.
	Timeout time.Duration
	// MaxBackoff caps the wait between attempts while no server answers.
	// 0: 5 minutes.
	MaxBackoff time.Duration
	// ReportEvery is the longest an error's occurrences are held back by
	// aggregation. 0: 10 minutes.
	ReportEvery time.Duration
	// HTTPClient sends the requests. Nil: a client of its own.
	HTTPClient *http.Client
	// Logger hears about delivery problems. Nil: discard.
	Logger *slog.Logger
	// ExpvarName is the name its counters are published under with expvar.
	// Empty: "flawless_client" (with a number added if taken).
	ExpvarName string
}

// RemoteStats are a Remote's counters.
type RemoteStats struct {
	Sent       int64 `json:"sent"`       // reports the server accepted
	Aggregated int64 `json:"aggregated"` // occurrences folded into a later report's count
	Dropped    int64 `json:"dropped"`    // reports dropped: queue full, or refused by the server as invalid
	Failed     int64 `json:"failed"`     // requests that failed (and were retried)
}

// Remote sends reports to flawless-server over HTTP. Report never blocks
// beyond a bounded enqueue, never panics, and memory stays bounded: a
// bounded queue, a bounded table of recent errors, one batch in flight.
// Identical reports are aggregated: occurrences 1 to 10 of an error are
// sent, then the 16th, 32nd, … (powers of two), and otherwise at least
// every ReportEvery, each with the count since the last send. A background
// loop sends counts held back. When no server answers, it backs off
// exponentially with jitter, up to MaxBackoff, honouring Retry-After on 429
// and 503, and fails over between URLs.
//
// The caller must call Close to deliver what is pending.
type Remote struct {
	cfg    RemoteConfig
	client *http.Client
	log    *slog.Logger
	queue  chan *report.Report
	seed   maphash.Seed

	mu     sync.Mutex
	errors map[uint64]*errState
	closed bool

	sent, aggregated, dropped, failed atomic.Int64
	inFlight                          atomic.Int64 // queued or being sent

	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	next     int // index of the URL to try first
}

// errState is the aggregation state of one error.
type errState struct {
	seen     int
	pending  int
	lastSent time.Time
	latest   *report.Report
}

const maxTracked = 1000 // errors whose aggregation state is kept

var expvarMu sync.Mutex

// NewRemote returns a Remote and starts its sender.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("client: RemoteConfig.URLs is empty")
	}
	for i, u := range cfg.URLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("client: server URL %q must start with http:// or https://", u)
		}
		cfg.URLs[i] = strings.TrimRight(u, "/")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 10 * time.Minute
	}
	r := &Remote{
		cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, queue: make(chan *report.Report, cfg.QueueSize),
		seed: maphash.MakeSeed(), errors: map[uint64]*errState{},
		flushReq: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: cfg.Timeout}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.publish()
	go r.sender()
	return r, nil
}

// publish makes the counters visible through expvar (/debug/vars).
func (r *Remote) publish() {
	expvarMu.Lock()
	defer expvarMu.Unlock()
	name := r.cfg.ExpvarName
	if name == "" {
		name = "flawless_client"
	}
	for i := 2; expvar.Get(name) != nil; i++ {
		name = fmt.Sprintf("%s_%d", strings.TrimSuffix(name, "_"+strconv.Itoa(i-1)), i)
	}
	expvar.Publish(name, expvar.Func(func() any { return r.Stats() }))
}

// Stats returns the counters.
func (r *Remote) Stats() RemoteStats {
	return RemoteStats{Sent: r.sent.Load(), Aggregated: r.aggregated.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// Report implements Reporter: it aggregates rep with identical reports and
// queues what is to be sent, without waiting for the network.
func (r *Remote) Report(_ context.Context, rep *report.Report) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("client: report: %v", p)
		}
	}()
	if rep == nil {
		return errors.New("client: nil report")
	}
	count, send, err := r.admit(r.signature(rep), rep.Occurrences(), rep)
	if err != nil || !send {
		return err
	}
	r.enqueue(withCount(rep, count))
	return nil
}

// admit counts n occurrences of the error with signature sig and decides
// whether to send now, and with what count. rep, when known, becomes the
// error's latest report.
func (r *Remote) admit(sig uint64, n int, rep *report.Report) (count int, send bool, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.dropped.Add(int64(n))
		return 0, false, errors.New("client: remote reporter closed")
	}
	st := r.errors[sig]
	if st == nil {
		if len(r.errors) >= maxTracked {
			r.evictLocked()
		}
		st = &errState{}
		r.errors[sig] = st
	}
	st.seen += n
	st.pending += n
	if rep != nil {
		st.latest = rep
	}
	if st.latest != nil && (st.seen <= 10 || isPowerOfTwo(st.seen) || now.Sub(st.lastSent) >= r.cfg.ReportEvery) {
		count = st.pending
		st.pending, st.lastSent = 0, now
		return count, true, nil
	}
	r.aggregated.Add(int64(n))
	return 0, false, nil
}

// recoverPanic is Recover's path for a Remote: the panic is first keyed by
// its program counters and type, and the report (resolving every frame,
// the costly part) is built only when it is going to be sent.
func (r *Remote) recoverPanic(ctx context.Context, v any, s settings) {
	var buf [64]uintptr
	pcs := buf[:runtime.Callers(3, buf[:])]
	var h maphash.Hash
	h.SetSeed(r.seed)
	maphash.WriteComparable(&h, reflect.TypeOf(v))
	var b [8]byte
	for _, pc := range pcs {
		binary.LittleEndian.PutUint64(b[:], uint64(pc))
		h.Write(b[:])
	}
	sig := h.Sum64()
	r.mu.Lock()
	known := r.errors[sig] != nil && r.errors[sig].latest != nil
	r.mu.Unlock()
	if known {
		count, send, err := r.admit(sig, 1, nil)
		if err != nil || !send {
			return
		}
		rep := report.FromPanic(v)
		if deliverPrepared(ctx, rep, s) == nil {
			r.mu.Lock()
			if st := r.errors[sig]; st != nil {
				st.latest = rep
			}
			r.mu.Unlock()
			r.enqueue(withCount(rep, count))
		}
		return
	}
	rep := report.FromPanic(v)
	if deliverPrepared(ctx, rep, s) != nil {
		return
	}
	if count, send, err := r.admit(sig, 1, rep); err == nil && send {
		r.enqueue(withCount(rep, count))
	}
}

func isPowerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }

func withCount(rep *report.Report, n int) *report.Report {
	c := *rep
	c.Count = n
	return &c
}

// evictLocked forgets the error seen least recently, sending its held-back
// count first.
func (r *Remote) evictLocked() {
	var oldest uint64
	var t time.Time
	first := true
	for k, st := range r.errors {
		if first || st.lastSent.Before(t) {
			oldest, t, first = k, st.lastSent, false
		}
	}
	if st := r.errors[oldest]; st != nil && st.pending > 0 {
		r.enqueue(withCount(st.latest, st.pending)) // never blocks
	}
	delete(r.errors, oldest)
}

// signature identifies identical reports: the same error type at the same
// stack.
func (r *Remote) signature(rep *report.Report) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(rep.Type)
	for _, f := range rep.Frames {
		h.WriteByte(0)
		h.WriteString(f.Function)
		h.WriteByte(0)
		h.WriteString(f.File)
		h.WriteString(strconv.Itoa(f.Line))
	}
	return h.Sum64()
}

func (r *Remote) enqueue(rep *report.Report) {
	r.inFlight.Add(1)
	select {
	case r.queue <- rep:
	default:
		r.inFlight.Add(-1)
		r.dropped.Add(int64(rep.Occurrences()))
	}
}

// heldBack queues the counts held back by aggregation: all of them, or
// only those older than ReportEvery.
func (r *Remote) heldBack(all bool) {
	now := time.Now()
	var out []*report.Report
	r.mu.Lock()
	for _, st := range r.errors {
		if st.pending > 0 && (all || now.Sub(st.lastSent) >= r.cfg.ReportEvery) {
			out = append(out, withCount(st.latest, st.pending))
			st.pending, st.lastSent = 0, now
		}
	}
	r.mu.Unlock()
	for _, rep := range out {
		r.enqueue(rep)
	}
}

// Flush sends the counts held back by aggregation and waits until every
// queued report is delivered, or ctx ends.
func (r *Remote) Flush(ctx context.Context) error {
	r.heldBack(true)
	for r.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return errors.New("client: remote reporter closed")
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Close stops taking reports, delivers what is held back and queued until
// ctx ends, and stops the sender.
func (r *Remote) Close(ctx context.Context) error {
	err := r.Flush(ctx)
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if !already {
		close(r.stop)
	}
	<-r.done
	return err
}

// sender delivers queued reports in batches, one request at a time.
func (r *Remote) sender() {
	defer close(r.done)
	tick := time.NewTicker(min(r.cfg.ReportEvery, time.Minute))
	defer tick.Stop()
	var batch []*report.Report
	backoff := time.Duration(0)
	for {
		if len(batch) == 0 {
			select {
			case <-r.stop:
				return
			case <-tick.C:
				r.heldBack(false)
				continue
			case rep := <-r.queue:
				batch = append(batch, rep)
			}
		}
	fill:
		for len(batch) < 100 {
			select {
			case rep := <-r.queue:
				batch = append(batch, rep)
			default:
				break fill
			}
		}
		wait, ok := r.send(batch)
		if ok {
			r.inFlight.Add(-int64(len(batch)))
			batch, backoff = nil, 0
			continue
		}
		// Nobody took it: back off, exponentially with jitter, capped,
		// or as long as the server asked.
		backoff = min(max(backoff*2, 500*time.Millisecond), r.cfg.MaxBackoff)
		d := backoff/2 + rand.N(backoff/2+1)
		if wait > 0 {
			d = min(wait, r.cfg.MaxBackoff)
		}
		select {
		case <-r.stop:
			r.dropped.Add(int64(len(batch)))
			r.inFlight.Add(-int64(len(batch)))
			return
		case <-time.After(d):
		}
	}
}

// send posts a batch to the servers in turn. It reports whether the batch
// is done with (accepted, or refused as invalid and dropped), and how long
// a server asked to wait.
func (r *Remote) send(batch []*report.Report) (time.Duration, bool) {
	body, err := report.MarshalBatch(batch)
	if err != nil {
		r.dropped.Add(int64(len(batch)))
		return 0, true
	}
	var wait time.Duration
	for i := range r.cfg.URLs {
		u := r.cfg.URLs[(r.next+i)%len(r.cfg.URLs)]
		code, retryAfter, err := r.post(u, body)
		switch {
		case err == nil && code == http.StatusAccepted:
			r.next = (r.next + i) % len(r.cfg.URLs)
			r.sent.Add(int64(len(batch)))
			return 0, true
		case err == nil && code >= 400 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusUnauthorized:
			// The server will never take this batch.
			r.log.Error("the server refused reports", "url", u, "status", code)
			r.dropped.Add(int64(len(batch)))
			return 0, true
		}
		r.failed.Add(1)
		r.log.Warn("could not deliver reports", "url", u, "status", code, "err", err)
		wait = max(wait, retryAfter)
	}
	r.next = (r.next + 1) % len(r.cfg.URLs)
	return wait, false
}

func (r *Remote) post(base string, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/reports", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	var wait time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Until(t)
		}
	}
	return resp.StatusCode, wait, nil
}
