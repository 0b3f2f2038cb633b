package flawless

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flawless-go/flawless/report"
)

// Unknown is the developer of an error whose line could not be blamed.
const Unknown = "unknown"

// UnblamableKey is the key under which each week counts the reports that
// had no blamable frame.
var UnblamableKey = report.Key{Function: "(unable to blame)"}

// Config configures an Engine. The zero Config works: reports are counted in
// memory, nobody is blamed and nobody is notified.
type Config struct {
	// Store keeps counts and notification state. Nil: in memory, for the
	// life of the process.
	Store Store
	// Source maps frames into the repository and reads their line text.
	// Nil: a ModuleSource, which needs no repository.
	Source Source
	// Blamer finds who last changed a line. Nil: nobody is blamed, so
	// nobody but the default contact is ever notified.
	Blamer Blamer
	// Notifier delivers notices. Nil: nobody is notified.
	Notifier Notifier
	// Policy holds the rules. Nil: no rules (nothing is ignored,
	// whitelisted, a building block or a known error; nobody watches).
	Policy Policy
	// Logger receives the engine's log. Nil: nothing is logged.
	Logger *slog.Logger
	// Now tells the time. Nil: time.Now.
	Now func() time.Time
	// Location is the time zone of week boundaries (weeks start on Sunday
	// at 00:00). Nil: time.Local.
	Location *time.Location

	// Threshold is the week's count at which an ordinary error is emailed
	// (report_error_threshold). 0: 3.
	Threshold int
	// MinimumDate: ordinary errors are emailed only when the blamed line
	// was last changed at or after it (report_only_after_minimum_date).
	// Zero: no cutoff.
	MinimumDate time.Time
	// OnlyBlamePaths: when set, only repository paths matching one of them
	// are blamed (only_blame_filepaths_matching). Nil: every path.
	OnlyBlamePaths []*regexp.Regexp
	// NeverBlameLines: lines matching one of them are never blamed unless
	// they are known errors (never_blame_lines_matching). Nil:
	// DefaultNeverBlameLines; an empty, non-nil slice: none.
	NeverBlameLines []*regexp.Regexp
	// DuplicateWindow: never two notifications for one key within it
	// (duplicate_email_window). 0: 5 minutes; negative: no window.
	DuplicateWindow time.Duration
	// DefaultContact hears about internal problems. Empty: they are only
	// logged.
	DefaultContact string

	// Workers is how many blames and notifications run at once
	// (max_concurrent_git_blames). 0: 10.
	Workers int
	// QueueSize bounds the work waiting for a worker. Work that does not
	// fit stays in the Store and is picked up by the next sweep. 0: 1024.
	QueueSize int
	// JobTimeout bounds one blame or one delivery. 0: 1 minute.
	JobTimeout time.Duration
	// RetryInterval is the delay before the first retry of a failed
	// notification; it doubles with each attempt up to MaxRetryInterval.
	// The store is also swept for leftover work this often. 0: 30 seconds.
	RetryInterval time.Duration
	// MaxRetryInterval caps the delay between retries. 0: 1 hour.
	MaxRetryInterval time.Duration
	// RetryExpiry: a notification still failing this long after it was
	// decided is given up on, and the default contact is told. 0: 24 hours.
	RetryExpiry time.Duration
}

// Stats are counters of what an Engine did since it started.
type Stats struct {
	Received    int64 `json:"received"`     // reports handed to Report
	Ignored     int64 `json:"ignored"`      // dropped by ignored_exceptions
	Whitelisted int64 `json:"whitelisted"`  // dropped by third_party_whitelist
	Unblamable  int64 `json:"unblamable"`   // counted with no blamable frame
	Counted     int64 `json:"counted"`      // counted under a key
	Notified    int64 `json:"notified"`     // notifications delivered
	Failed      int64 `json:"failed"`       // delivery attempts that failed
	GaveUp      int64 `json:"gave_up"`      // notifications given up on
	QueueFull   int64 `json:"queue_full"`   // work left for the next sweep
	BlameErrors int64 `json:"blame_errors"` // blames that failed
	Problems    int64 `json:"problems"`     // problem notices
	Errors      int64 `json:"errors"`       // store failures and recovered panics
}

type stats struct {
	ignored, whitelisted, unblamable, counted, rejected    atomic.Int64
	notified, failed, gaveUp, queueFull, blameErrors, errs atomic.Int64
	problems                                               atomic.Int64
}

// Engine takes reports, counts them per key and week, and hands first
// occurrences to workers that blame them and notify the developers.
//
// Its methods are safe for concurrent use. The caller must call Close.
type Engine struct {
	cfg      Config
	store    Store
	blamer   Blamer
	notifier Notifier
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
	contact  string

	classes atomic.Pointer[classCache]
	seed    maphash.Seed

	closeMu  sync.RWMutex
	closed   bool
	isDone   atomic.Bool // closed, for the hot path
	week     atomic.Pointer[weekSpan]
	jobs     chan job
	inflight sync.Map     // job → struct{}
	queued   atomic.Int64 // jobs enqueued and not yet finished
	stop     chan struct{}
	wg       sync.WaitGroup
	base     context.Context
	cancel   context.CancelFunc

	stats stats
}

// New returns an Engine configured by cfg, and starts its workers. Work left
// pending in the Store (blames not run, notifications not delivered) is
// resumed.
func New(cfg Config) *Engine {
	if cfg.Store == nil {
		cfg.Store = NewMemStore()
	}
	if cfg.Source == nil {
		cfg.Source = &ModuleSource{}
	}
	if cfg.Policy == nil {
		cfg.Policy = noPolicy{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = 3
	}
	if cfg.NeverBlameLines == nil {
		cfg.NeverBlameLines = DefaultNeverBlameLines
	}
	if cfg.DuplicateWindow == 0 {
		cfg.DuplicateWindow = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 10
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = time.Minute
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.MaxRetryInterval <= 0 {
		cfg.MaxRetryInterval = time.Hour
	}
	if cfg.RetryExpiry <= 0 {
		cfg.RetryExpiry = 24 * time.Hour
	}
	e := &Engine{
		cfg:      cfg,
		store:    cfg.Store,
		blamer:   cfg.Blamer,
		notifier: cfg.Notifier,
		log:      cfg.Logger,
		now:      cfg.Now,
		loc:      cfg.Location,
		seed:     maphash.MakeSeed(),
		jobs:     make(chan job, cfg.QueueSize),
		stop:     make(chan struct{}),
	}
	if c := cfg.DefaultContact; c != "" {
		if a, err := mail.ParseAddress(c); err != nil {
			e.log.Error("default contact is not a valid address; problems will only be logged", "default_contact", c, "err", err)
		} else {
			e.contact = a.Address
		}
	}
	e.base, e.cancel = context.WithCancel(context.Background())
	e.SetPolicy(cfg.Policy)
	e.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go e.worker()
	}
	go e.sweeper()
	return e
}

// SetPolicy replaces the rules; reports classified from now on use p. A nil
// p means no rules.
func (e *Engine) SetPolicy(p Policy) {
	if p == nil {
		p = noPolicy{}
	}
	e.classes.Store(newClassCache(&classifier{
		source:     e.cfg.Source,
		policy:     p,
		onlyBlame:  e.cfg.OnlyBlamePaths,
		neverBlame: e.cfg.NeverBlameLines,
	}))
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// Week returns the start of the week t falls in: Sunday 00:00 in the
// engine's time zone.
func (e *Engine) Week(t time.Time) time.Time { return WeekStart(t, e.loc) }

// WeekStart returns the start of the week t falls in: Sunday 00:00 in loc.
func WeekStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	return time.Date(y, m, d-int(t.Weekday()), 0, 0, 0, 0, loc)
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		Received: s.ignored.Load() + s.whitelisted.Load() + s.unblamable.Load() + s.counted.Load() + s.rejected.Load(),
		Ignored:  s.ignored.Load(), Whitelisted: s.whitelisted.Load(),
		Unblamable: s.unblamable.Load(), Counted: s.counted.Load(), Notified: s.notified.Load(),
		Failed: s.failed.Load(), GaveUp: s.gaveUp.Load(), QueueFull: s.queueFull.Load(),
		BlameErrors: s.blameErrors.Load(), Problems: s.problems.Load(), Errors: s.errs.Load(),
	}
}

// Report counts r. It classifies r's frames, picks the blamed frame, and
// adds r to the count of its key in this week's partition before it
// returns; blame and notification of a new key happen later, on the
// engine's workers. A report dropped by the rules is not an error: Report
// returns an error only when the report has no frames, the store failed, or
// the engine is closed (the report is still counted then).
//
// Canceling ctx does not stop the report from being counted.
func (e *Engine) Report(ctx context.Context, r *report.Report) (err error) {
	defer func() {
		if p := recover(); p != nil {
			e.stats.errs.Add(1)
			e.log.Error("panic while counting a report", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("flawless: internal error: %v", p)
		}
	}()
	if r == nil || len(r.Frames) == 0 {
		e.stats.rejected.Add(1)
		return errors.New("flawless: report has no frames")
	}
	if ctx == nil {
		ctx = context.Background()
	} else if ctx.Done() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	cc := e.classes.Load()
	if cc.cl.policy.Ignore(r) {
		e.stats.ignored.Add(1)
		return nil
	}
	c := cc.get(ctx, e.seed, r)
	if c.ThirdParty != "" {
		e.stats.whitelisted.Add(1)
		return nil
	}
	key := c.Key
	if c.Blamed < 0 {
		key = UnblamableKey
		e.stats.unblamable.Add(1)
	} else {
		e.stats.counted.Add(1)
	}
	now := e.now()
	week := e.currentWeek(now)
	ent, err := e.store.Add(ctx, week, key, Occurrence{Report: r, Count: r.Occurrences(), Time: now, Classification: c})
	if err != nil {
		e.stats.errs.Add(1)
		return fmt.Errorf("flawless: count %s: %w", key, err)
	}
	if ent.Count == r.Occurrences() && c.Blamed < 0 {
		e.log.Info("unable to blame", "host", r.Hostname, "type", r.Type, "message", r.Message, "frames", c.Explain())
	}
	e.schedule(ent, c.Known, now)
	if e.isClosed() {
		return ErrClosed
	}
	return nil
}

// Explanation is what the engine would do with a report, for tests of rule
// files and for debugging.
type Explanation struct {
	Classification
	// Route is who would be notified if author had last changed the
	// blamed line; zero when the report is dropped or nothing is blamed.
	Route Route
}

// Explain classifies r as Report would, without counting it, and routes it
// as if blame had named author (an email address).
func (e *Engine) Explain(ctx context.Context, r *report.Report, author string) Explanation {
	cc := e.classes.Load()
	if cc.cl.policy.Ignore(r) {
		return Explanation{Classification: Classification{Ignored: true, Blamed: -1}}
	}
	x := Explanation{Classification: *cc.cl.classify(ctx, r)}
	if f, ok := x.BlamedFrame(); ok && x.ThirdParty == "" {
		x.Route = cc.cl.policy.Route(author, f.Path, x.StackPaths())
	}
	return x
}

// Close stops the workers once the work already queued is done, or when ctx
// ends; work still pending stays in the Store for the next start. It does
// not close the Store, Source, Blamer or Notifier it was given.
func (e *Engine) Close(ctx context.Context) error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return nil
	}
	e.closed = true
	e.isDone.Store(true)
	close(e.stop)
	close(e.jobs)
	e.closeMu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		e.cancel()
		return nil
	case <-ctx.Done():
		e.cancel()
		<-done
		return ctx.Err()
	}
}

// Flush waits until the work queued so far (blames, notifications and the
// work they lead to) is done, or ctx ends. Retries scheduled for later are
// not waited for.
func (e *Engine) Flush(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for e.queued.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (e *Engine) isClosed() bool { return e.isDone.Load() }

// weekSpan is a week: [start, end).
type weekSpan struct{ start, end time.Time }

// currentWeek returns the start of the week of now, remembering the week
// so that most calls need no calendar arithmetic.
func (e *Engine) currentWeek(now time.Time) time.Time {
	if w := e.week.Load(); w != nil && !now.Before(w.start) && now.Before(w.end) {
		return w.start
	}
	start := e.Week(now)
	y, m, d := start.Date()
	e.week.Store(&weekSpan{start, time.Date(y, m, d+7, 0, 0, 0, 0, e.loc)})
	return start
}

// schedule queues the work an entry needs next, if any.
func (e *Engine) schedule(ent Entry, known *KnownError, now time.Time) {
	switch {
	case ent.Unblamable:
		if !ent.ProblemReported && e.contact != "" && e.notifier != nil {
			e.enqueue(job{jobUnblamable, ent.Week.Unix(), ent.Key})
		}
	case !ent.Blamed:
		e.enqueue(job{jobBlame, ent.Week.Unix(), ent.Key})
	case ent.Pending != nil:
		if !ent.Pending.Next.After(now) {
			e.enqueue(job{jobSend, ent.Week.Unix(), ent.Key})
		}
	case e.wantNotice(ent, known, now):
		e.enqueue(job{jobNotify, ent.Week.Unix(), ent.Key})
	}
}

type jobKind uint8

const (
	jobBlame jobKind = iota
	jobNotify
	jobSend
	jobUnblamable
)

type job struct {
	kind jobKind
	week int64
	key  report.Key
}

// enqueue hands j to the workers unless it is already queued, the queue is
// full (the sweeper finds it later) or the engine is closed. It never blocks.
func (e *Engine) enqueue(j job) {
	if _, dup := e.inflight.LoadOrStore(j, struct{}{}); dup {
		return
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		e.inflight.Delete(j)
		return
	}
	e.queued.Add(1)
	select {
	case e.jobs <- j:
	default:
		e.queued.Add(-1)
		e.inflight.Delete(j)
		e.stats.queueFull.Add(1)
	}
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for j := range e.jobs {
		// A blame stays marked until it is done, so that one key is never
		// blamed twice at once; other jobs are cheap and idempotent, so a
		// report arriving while one runs may queue it again.
		if j.kind != jobBlame {
			e.inflight.Delete(j)
		}
		e.run(j)
		if j.kind == jobBlame {
			e.inflight.Delete(j)
		}
		e.queued.Add(-1)
	}
}

// run does one job; a panic in it is logged, never allowed to escape.
func (e *Engine) run(j job) {
	defer func() {
		if p := recover(); p != nil {
			e.stats.errs.Add(1)
			e.log.Error("panic in background work", "key", j.key.String(), "panic", p, "stack", string(debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(e.base, e.cfg.JobTimeout)
	defer cancel()
	week := time.Unix(j.week, 0).In(e.loc)
	var err error
	switch j.kind {
	case jobBlame:
		err = e.blame(ctx, week, j.key)
	case jobNotify:
		err = e.claim(ctx, week, j.key)
	case jobSend:
		err = e.send(ctx, week, j.key)
	case jobUnblamable:
		err = e.reportUnblamable(ctx, week)
	}
	if err != nil {
		e.stats.errs.Add(1)
		e.log.Error("background work failed", "key", j.key.String(), "err", err)
	}
}

// sweeper resumes pending work at start, then every RetryInterval: due
// retries, and work that did not fit in the queue.
func (e *Engine) sweeper() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.RetryInterval)
	defer t.Stop()
	for {
		e.sweep()
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
	}
}

func (e *Engine) sweep() {
	defer func() {
		if p := recover(); p != nil {
			e.stats.errs.Add(1)
			e.log.Error("panic while sweeping the store", "panic", p)
		}
	}()
	ctx, cancel := context.WithTimeout(e.base, e.cfg.JobTimeout)
	defer cancel()
	ents, err := e.store.Pending(ctx)
	if err != nil {
		e.stats.errs.Add(1)
		e.log.Error("list pending work", "err", err)
		return
	}
	now := e.now()
	pol := e.classes.Load().cl.policy
	for _, ent := range ents {
		e.schedule(ent, knownOf(ent, pol), now)
	}
}

// knownOf returns the known-error rule that now applies to the entry's
// blamed frame.
func knownOf(ent Entry, pol Policy) *KnownError {
	if ent.Classification == nil {
		return nil
	}
	f, ok := ent.Classification.BlamedFrame()
	if !ok {
		return nil
	}
	return pol.Match(f.Path, f.Function, f.Text).Known
}

// blame runs blame for a new entry, routes the answer and records it; then
// notifies if the entry already qualifies.
func (e *Engine) blame(ctx context.Context, week time.Time, key report.Key) error {
	ent, err := e.store.Get(ctx, week, key)
	if err != nil || ent.Blamed {
		return err
	}
	pol := e.classes.Load().cl.policy
	var author Author
	var route Route
	var blameErr error
	f, ok := ent.Classification.BlamedFrame()
	switch {
	case !ok:
		blameErr = errors.New("no blamable frame recorded")
	case e.blamer != nil:
		loc := Location{Path: f.Path, Text: f.Text, Revision: ent.Classification.Revision, Fallback: ent.Classification.Fallback}
		author, blameErr = e.blamer.Blame(ctx, loc, f.Line)
		if blameErr != nil && (ctx.Err() != nil || errors.Is(blameErr, ErrUnavailable)) {
			return nil // interrupted or busy: the sweeper or the next start tries again
		}
	}
	developer := ""
	var problem string
	switch {
	case blameErr != nil:
		e.stats.blameErrors.Add(1)
		developer = Unknown
		problem = fmt.Sprintf("Unable to do blame for %s: %v. You may want to set only_blame_filepaths_matching so that only your own code is blamed.", key, blameErr)
	case e.blamer != nil:
		route = pol.Route(author.Email, f.Path, ent.Classification.StackPaths())
		developer = route.Developer
		if developer == "" {
			developer = Unknown
			problem = fmt.Sprintf("Blame of %s names %q, which is not a valid email address; nobody was notified.", key, author.Email)
		}
	}
	ent, err = e.store.Update(ctx, week, key, func(x *Entry) bool {
		if x.Blamed {
			return false
		}
		x.Blamed, x.Author, x.Developer, x.Notes = true, author, developer, route.Notes
		if blameErr != nil {
			x.BlameError = blameErr.Error()
		}
		return true
	})
	if err != nil {
		return err
	}
	e.log.Info("error blamed", "key", key.String(), "developer", developer, "commit", author.Commit, "changed", author.Time)
	if problem != "" {
		e.problemOnce(ctx, week, key, problem)
		return nil
	}
	if e.wantNotice(ent, knownOf(ent, pol), e.now()) {
		return e.claim(ctx, week, key)
	}
	return nil
}

// wantNotice decides whether the entry's state calls for a notification
// now (SPEC section 7). It is a pure function of the entry, so it can run
// again inside the store's atomic update.
func (e *Engine) wantNotice(ent Entry, known *KnownError, now time.Time) bool {
	if e.notifier == nil || ent.Unblamable || !ent.Blamed || ent.Pending != nil ||
		ent.Developer == "" || ent.Developer == Unknown {
		return false
	}
	if w := e.cfg.DuplicateWindow; w > 0 && !ent.NoticeClaimed.IsZero() && now.Sub(ent.NoticeClaimed) < w {
		return false
	}
	if known != nil {
		if known.Max != nil && ent.Count > *known.Max {
			return false
		}
		if known.Min > 0 && ent.Count >= known.Min && ent.ClaimedAtCount == 0 {
			return true
		}
		return known.Every > 0 && ent.Count/known.Every > ent.ClaimedAtCount/known.Every
	}
	threshold := e.cfg.Threshold
	if ent.Threshold > 0 {
		threshold = ent.Threshold
	}
	return ent.ClaimedAtCount == 0 && ent.Count >= threshold && !ent.Author.Time.Before(e.cfg.MinimumDate)
}

// claim atomically decides a notification for the entry, records it as
// pending, and delivers it. Only one caller, in any process sharing the
// store, wins the claim.
func (e *Engine) claim(ctx context.Context, week time.Time, key report.Key) error {
	ent, err := e.store.Get(ctx, week, key)
	if err != nil {
		return err
	}
	pol := e.classes.Load().cl.policy
	known := knownOf(ent, pol)
	now := e.now()
	if !e.wantNotice(ent, known, now) {
		return nil
	}
	to, invalid := e.recipients(ent, known, pol)
	if len(invalid) > 0 {
		e.problem(ctx, fmt.Sprintf("Invalid email address found for %s. Not sending to: %s", key, strings.Join(invalid, ", ")))
	}
	if len(to) == 0 {
		return nil
	}
	claimed := false
	_, err = e.store.Update(ctx, week, key, func(x *Entry) bool {
		claimed = e.wantNotice(*x, known, now)
		if claimed {
			x.Pending = &Pending{To: to, Created: now, Next: now}
			x.NoticeClaimed, x.ClaimedAtCount = now, x.Count
		}
		return claimed
	})
	if err != nil || !claimed {
		return err
	}
	return e.send(ctx, week, key)
}

// recipients returns the valid, distinct addresses an error notice goes
// to: the developer, the watchers, the known error's recipients; and the
// invalid ones found on the way.
func (e *Engine) recipients(ent Entry, known *KnownError, pol Policy) (to, invalid []string) {
	var f FrameInfo
	var stack []string
	if ent.Classification != nil {
		f, _ = ent.Classification.BlamedFrame()
		stack = ent.Classification.StackPaths()
	}
	all := []string{ent.Developer}
	all = append(all, pol.Route("", f.Path, stack).Watchers...)
	if known != nil {
		all = append(all, known.Recipients...)
	}
	to, invalid = ValidRecipients(all)
	return to, invalid
}

// send delivers the entry's pending notification and records the outcome:
// delivered, to be retried, or given up on.
func (e *Engine) send(ctx context.Context, week time.Time, key report.Key) error {
	// Lease the pending notification: push its next attempt past this one's
	// deadline, so that no other worker or process sends it meanwhile. If
	// this process dies mid-send, the lease runs out and another retries.
	start := e.now()
	leased := false
	ent, err := e.store.Update(ctx, week, key, func(x *Entry) bool {
		leased = x.Pending != nil && !x.Pending.Next.After(start)
		if leased {
			x.Pending.Next = start.Add(e.cfg.JobTimeout + time.Minute)
		}
		return leased
	})
	if err != nil || !leased {
		return err
	}
	p := *ent.Pending
	pol := e.classes.Load().cl.policy
	known := knownOf(ent, pol)
	n := &Notice{Kind: NoticeError, To: p.To, Entry: ent, Known: known, Reasons: reasons(ent, known), Time: p.Created}
	sendErr := e.notify(ctx, n)
	now := e.now()
	if sendErr == nil {
		e.stats.notified.Add(1)
		e.log.Info("notified", "key", key.String(), "to", p.To)
		_, err = e.store.Update(ctx, week, key, func(x *Entry) bool {
			x.Pending = nil
			x.Notified++
			return true
		})
		return err
	}
	e.stats.failed.Add(1)
	giveUp := errors.Is(sendErr, ErrPermanent) || now.Sub(p.Created) >= e.cfg.RetryExpiry
	if ctx.Err() != nil && e.base.Err() != nil {
		giveUp = false // shutting down: resume on the next start
	}
	_, err = e.store.Update(ctx, week, key, func(x *Entry) bool {
		if x.Pending == nil {
			return false
		}
		if giveUp {
			x.Pending = nil
			x.Failed++
			return true
		}
		x.Pending.Attempts++
		x.Pending.LastError = sendErr.Error()
		x.Pending.Next = now.Add(e.backoff(x.Pending.Attempts))
		return true
	})
	if giveUp {
		e.stats.gaveUp.Add(1)
		e.log.Error("notification given up", "key", key.String(), "to", p.To, "err", sendErr)
		e.problem(ctx, fmt.Sprintf("Gave up notifying %s about %s after %d attempts: %v", strings.Join(p.To, ", "), key, p.Attempts+1, sendErr))
	} else {
		e.log.Warn("notification failed; will retry", "key", key.String(), "to", p.To, "err", sendErr)
	}
	return err
}

// backoff returns the delay before retry number attempts (from 1): the
// retry interval doubled each time, capped, with ±20 % jitter.
func (e *Engine) backoff(attempts int) time.Duration {
	d := e.cfg.RetryInterval
	for i := 1; i < attempts && d < e.cfg.MaxRetryInterval; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxRetryInterval)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// notify calls the notifier, turning a panic into an error.
func (e *Engine) notify(ctx context.Context, n *Notice) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("notifier panicked: %v", p)
		}
	}()
	return e.notifier.Notify(ctx, n)
}

func reasons(ent Entry, known *KnownError) []string {
	var rs []string
	if a := ent.Author; a.Commit != "" || a.Email != "" {
		s := "Blame: line last changed"
		if a.Commit != "" {
			s += " in commit " + a.Commit
		}
		if a.Name != "" || a.Email != "" {
			s += " by " + strings.TrimSpace(a.Name+" <"+a.Email+">")
		}
		if !a.Time.IsZero() {
			s += " on " + a.Time.Format("2006-01-02 15:04:05 -0700")
		}
		rs = append(rs, s)
	}
	if c := ent.Classification; c != nil && c.Fallback {
		rs = append(rs, "The report's revision was not in the repository; blamed at the branch head "+c.Revision)
	}
	if ent.Last != nil && ent.Last.Build.Modified {
		rs = append(rs, "The binary was built from a work tree with uncommitted changes")
	}
	rs = append(rs, ent.Notes...)
	if known != nil {
		rs = append(rs, "Known error rule "+known.Rule)
	}
	return rs
}

// reportUnblamable tells the default contact, once a week, that reports
// arrive that nothing can be blamed for.
func (e *Engine) reportUnblamable(ctx context.Context, week time.Time) error {
	ent, err := e.store.Get(ctx, week, UnblamableKey)
	if err != nil || ent.ProblemReported {
		return err
	}
	msg := fmt.Sprintf("%d report(s) this week had no frame that could be blamed. The latest came from %s. Frames: %s",
		ent.Count, host(ent.Last), ent.Classification.Explain())
	e.problemOnce(ctx, week, UnblamableKey, msg)
	return nil
}

func host(r *report.Report) string {
	if r == nil || r.Hostname == "" {
		return "an unknown host"
	}
	return r.Hostname
}

// problemOnce tells the default contact about a problem with an entry,
// once per entry.
func (e *Engine) problemOnce(ctx context.Context, week time.Time, key report.Key, msg string) {
	first := false
	_, err := e.store.Update(ctx, week, key, func(x *Entry) bool {
		first = !x.ProblemReported
		x.ProblemReported = true
		return first
	})
	if err != nil {
		e.log.Error("record a problem", "key", key.String(), "err", err)
		return
	}
	if first {
		e.problem(ctx, msg)
	}
}

// problem logs an internal problem and tells the default contact. It never
// recurses: a failure to tell is only logged.
func (e *Engine) problem(ctx context.Context, msg string) {
	e.stats.problems.Add(1)
	e.log.Error("problem", "msg", msg)
	if e.contact == "" || e.notifier == nil {
		return
	}
	n := &Notice{Kind: NoticeProblem, To: []string{e.contact}, Problem: msg, Time: e.now()}
	if err := e.notify(ctx, n); err != nil {
		e.log.Error("could not tell the default contact about a problem", "err", err)
	}
}

// noPolicy is the Policy of an engine without rules.
type noPolicy struct{}

func (noPolicy) Ignore(*report.Report) bool         { return false }
func (noPolicy) Match(string, string, string) Match { return Match{} }
func (noPolicy) Route(author, _ string, _ []string) Route {
	if a, err := mail.ParseAddress(author); err == nil {
		return Route{Developer: a.Address}
	}
	return Route{}
}

// classCache remembers the classification of stacks already seen, so that
// a repeated error costs a hash and a map lookup. It is replaced whole when
// the rules change.
type classCache struct {
	cl     *classifier
	shards [16]struct {
		sync.RWMutex
		m map[uint64]*Classification
	}
}

const classCacheShardSize = 1024

func newClassCache(cl *classifier) *classCache {
	c := &classCache{cl: cl}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*Classification)
	}
	return c
}

func (c *classCache) get(ctx context.Context, seed maphash.Seed, r *report.Report) *Classification {
	h := stackHash(seed, r)
	s := &c.shards[h%uint64(len(c.shards))]
	s.RLock()
	cl, ok := s.m[h]
	s.RUnlock()
	if ok {
		return cl
	}
	cl = c.cl.classify(ctx, r)
	if cl.transient {
		return cl
	}
	s.Lock()
	if len(s.m) >= classCacheShardSize {
		clear(s.m)
	}
	s.m[h] = cl
	s.Unlock()
	return cl
}

// stackHash identifies what classification depends on: the main module,
// the revision and the frames. Each string is hashed in one shot and the
// results are mixed, which is several times faster than streaming the bytes
// through a maphash.Hash.
func stackHash(seed maphash.Seed, r *report.Report) uint64 {
	h := mix(maphash.String(seed, r.Build.Path), maphash.String(seed, r.Build.Revision))
	for i := range r.Frames {
		f := &r.Frames[i]
		h = mix(h, maphash.String(seed, f.Function))
		h = mix(h, maphash.String(seed, f.File))
		if f.Text != "" {
			h = mix(h, maphash.String(seed, f.Text))
		}
		h = mix(h, uint64(f.Line)+uint64(len(f.Text))<<32)
	}
	return h
}

// mix combines two 64-bit hashes (the multiply-xorshift finaliser of
// splitmix64 applied to their sum with a rotation, so order matters).
func mix(h, v uint64) uint64 {
	h = (h<<31 | h>>33) + v + 0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}
