package flawless_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/rules"
)

func knownRule(t *testing.T, settings string) *rules.Set {
	t.Helper()
	return mustRules(t, rules.Options{}, map[string]string{"known_errors.toml": `
[[known_error]]
filename = "coreservices/service.go"
` + settings})
}

func TestKnownErrorAlertRules(t *testing.T) {
	tests := []struct {
		reason   string
		settings string
		counts   []int // occurrences per report, reported one after another
		want     int   // emails
	}{
		{"min: the first email once the count reaches it", "min_alert_threshold = 3", []int{1, 1, 1, 1, 1}, 1},
		{"min: not reached", "min_alert_threshold = 6", []int{1, 1, 1, 1, 1}, 0},
		{"every n: each multiple", "alert_every_n_occurrences = 2", []int{1, 1, 1, 1, 1}, 2},
		{"every n: an aggregated report passing a multiple counts", "alert_every_n_occurrences = 10", []int{7, 7, 7}, 2},
		{"max wins over every n", "alert_every_n_occurrences = 1\nmax_alert_threshold = 2", []int{1, 1, 1, 1}, 2},
		{"max 0 silences", "alert_every_n_occurrences = 1\nmax_alert_threshold = 0", []int{1, 1}, 0},
		{"none set: silenced", "", []int{1, 1, 1, 1}, 0},
		{"the global threshold does not apply to known errors", "min_alert_threshold = 1", []int{1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			clk := &clock{t: fixtureNow}
			rec := &recorder{}
			e := flawless.New(flawless.Config{
				Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Policy: knownRule(t, tt.settings),
				Now: clk.Now, Threshold: 100, DuplicateWindow: -1,
			})
			defer closeEngine(t, e)
			for i, n := range tt.counts {
				clk.Set(fixtureNow.Add(time.Duration(i) * time.Minute))
				r := newReport("h", "m", serviceFrame)
				r.Count = n
				if err := e.Report(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				settle(t, e)
			}
			if got := len(rec.Notices(flawless.NoticeError)); got != tt.want {
				t.Errorf("%d emails for counts %v, want %d", got, tt.counts, tt.want)
			}
		})
	}
}

func TestDuplicateWindow(t *testing.T) {
	clk := &clock{t: fixtureNow}
	rec := &recorder{}
	e := flawless.New(flawless.Config{
		Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Now: clk.Now,
		Policy: knownRule(t, "alert_every_n_occurrences = 1"),
	})
	defer closeEngine(t, e)
	step := func(d time.Duration) {
		clk.Set(clk.Now().Add(d))
		e.Report(t.Context(), newReport("h", "m", serviceFrame))
		settle(t, e)
	}
	step(0)
	step(time.Minute)     // inside the 5-minute window: no email
	step(3 * time.Minute) // still inside
	step(2 * time.Minute) // 6 minutes after the first email
	if got := len(rec.Notices(flawless.NoticeError)); got != 2 {
		t.Errorf("%d emails, want 2 (the window holds back the two in between)", got)
	}
}

func TestAggregatedCountIsKeptOnTheFirstReport(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer closeEngine(t, e)
	r := newReport("h", "m", serviceFrame)
	r.Count = 17
	e.Report(t.Context(), r)
	ent, err := e.Store().Get(t.Context(), e.Week(time.Now()), key(serviceFrame))
	if err != nil || ent.Count != 17 {
		t.Errorf("count = %d, %v; want the report's 17", ent.Count, err)
	}
}

func TestRetriesWithBackoffUntilDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{errs: []error{errors.New("421 busy"), errors.New("connection refused")}}
		e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Threshold: 1})
		e.Report(t.Context(), newReport("h", "m", serviceFrame))
		synctest.Wait()
		week := e.Week(time.Now())
		ent, _ := e.Store().Get(t.Context(), week, key(serviceFrame))
		if ent.Pending == nil || ent.Pending.Attempts != 1 || ent.Pending.LastError != "421 busy" || ent.Notified != 0 {
			t.Fatalf("after a failed send: pending %+v, notified %d", ent.Pending, ent.Notified)
		}
		if d := time.Until(ent.Pending.Next); d < 24*time.Second || d > 36*time.Second {
			t.Errorf("first retry in %v, want 30s ± 20%%", d)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		ent, _ = e.Store().Get(t.Context(), week, key(serviceFrame))
		if rec.Calls() != 3 || ent.Notified != 1 || ent.Pending != nil {
			t.Errorf("after the retries: %d calls, notified %d, pending %+v; want 3, 1, nil", rec.Calls(), ent.Notified, ent.Pending)
		}
		closeEngine(t, e)
	})
}

func TestPermanentFailureIsGivenUpAndReported(t *testing.T) {
	rec := &recorder{errs: []error{fmt.Errorf("550 no such user: %w", flawless.ErrPermanent)}}
	e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Threshold: 1, DefaultContact: "ops@example.com"})
	e.Report(t.Context(), newReport("h", "m", serviceFrame))
	settle(t, e)
	closeEngine(t, e)
	ent, _ := e.Store().Get(t.Context(), e.Week(time.Now()), key(serviceFrame))
	if ent.Pending != nil || ent.Failed != 1 || ent.Notified != 0 {
		t.Errorf("pending %+v, failed %d, notified %d; want nil, 1, 0", ent.Pending, ent.Failed, ent.Notified)
	}
	ps := rec.Notices(flawless.NoticeProblem)
	if len(ps) != 1 || ps[0].To[0] != "ops@example.com" || !strings.Contains(ps[0].Problem, "550 no such user") || ps[0].Subject() != flawless.ProblemSubject {
		t.Errorf("problem notices = %+v", ps)
	}
	if rec.Calls() != 2 {
		t.Errorf("%d notifier calls, want 2 (the failed one, the problem)", rec.Calls())
	}
}

func TestExpiredNotificationIsGivenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		for range 100 {
			rec.errs = append(rec.errs, errors.New("timeout"))
		}
		e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Threshold: 1, RetryExpiry: time.Hour})
		e.Report(t.Context(), newReport("h", "m", serviceFrame))
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		ent, _ := e.Store().Get(t.Context(), e.Week(time.Now()), key(serviceFrame))
		if ent.Pending != nil || ent.Failed != 1 {
			t.Errorf("after the expiry: pending %+v, failed %d", ent.Pending, ent.Failed)
		}
		if calls := rec.Calls(); calls < 5 || calls > 10 { // 30 s doubling passes an hour after 7 or 8 waits
			t.Errorf("%d attempts in an hour of backoff from 30 s, want a handful", calls)
		}
		closeEngine(t, e)
	})
}

func TestRestartResumesPendingWork(t *testing.T) {
	store := flawless.NewMemStore()
	down := &recorder{errs: []error{errors.New("smtp down")}}
	blamer := &fakeBlamer{author: fixtureAuthor}
	e := flawless.New(flawless.Config{Store: store, Blamer: blamer, Notifier: down, Threshold: 1, RetryInterval: time.Hour})
	e.Report(t.Context(), newReport("h", "m", serviceFrame))
	settle(t, e)
	closeEngine(t, e)
	if len(down.Notices(flawless.NoticeError)) != 0 {
		t.Fatal("the first engine delivered")
	}
	// Pretend the retry is due, as it is after the restart of a long outage.
	week := flawless.WeekStart(time.Now(), time.Local)
	store.Update(t.Context(), week, key(serviceFrame), func(x *flawless.Entry) bool {
		x.Pending.Next = time.Now().Add(-time.Second)
		return true
	})
	up := &recorder{}
	e2 := flawless.New(flawless.Config{Store: store, Blamer: blamer, Notifier: up, Threshold: 1})
	deadline := time.Now().Add(5 * time.Second)
	for len(up.Notices(flawless.NoticeError)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	closeEngine(t, e2)
	if n := len(up.Notices(flawless.NoticeError)); n != 1 {
		t.Errorf("the restarted engine delivered %d notices, want the pending one", n)
	}
	if n := len(blamer.Calls()); n != 1 {
		t.Errorf("blame ran %d times across the restart, want once", n)
	}
}

func TestBlameFailureAssignsUnknownAndToldOnce(t *testing.T) {
	rec := &recorder{}
	blamer := &fakeBlamer{author: fixtureAuthor, fail: map[string]error{"coreservices/service.go": errNoSuchLine}}
	e := flawless.New(flawless.Config{Blamer: blamer, Notifier: rec, Threshold: 1, DefaultContact: "ops@example.com"})
	for range 3 {
		e.Report(t.Context(), newReport("h", "m", serviceFrame))
		settle(t, e)
	}
	closeEngine(t, e)
	ent, _ := e.Store().Get(t.Context(), e.Week(time.Now()), key(serviceFrame))
	if ent.Developer != flawless.Unknown || ent.Count != 3 || ent.BlameError != "no such line" {
		t.Errorf("developer %q, count %d, blame error %q", ent.Developer, ent.Count, ent.BlameError)
	}
	if n := len(rec.Notices(flawless.NoticeError)); n != 0 {
		t.Errorf("%d error emails for an unknown developer", n)
	}
	ps := rec.Notices(flawless.NoticeProblem)
	if len(ps) != 1 || !strings.Contains(ps[0].Problem, "Unable to do blame for coreservices/service.go") {
		t.Errorf("problem notices = %+v, want one about the blame", ps)
	}
}

func TestUnableToBlameIsCountedAndToldOncePerWeek(t *testing.T) {
	clk := &clock{t: fixtureNow}
	rec := &recorder{}
	e := flawless.New(flawless.Config{Notifier: rec, DefaultContact: "ops@example.com", Now: clk.Now, Location: time.UTC})
	defer closeEngine(t, e)
	std := report.Frame{Function: "net/http.(*conn).serve", File: "/usr/local/go/src/net/http/server.go", Line: 2000}
	for _, d := range []time.Duration{0, time.Hour, 7 * 24 * time.Hour} {
		clk.Set(fixtureNow.Add(d))
		if err := e.Report(t.Context(), newReport("web-1", "m", std)); err != nil {
			t.Fatal(err)
		}
		settle(t, e)
	}
	ps := rec.Notices(flawless.NoticeProblem)
	if len(ps) != 2 {
		t.Fatalf("%d problem notices over two weeks, want 2", len(ps))
	}
	if !strings.Contains(ps[0].Problem, "net/http/server.go:2000 (not in the repository)") || !strings.Contains(ps[0].Problem, "web-1") {
		t.Errorf("problem = %q, want every frame's verdict and the host", ps[0].Problem)
	}
	if s := e.Stats(); s.Unblamable != 3 {
		t.Errorf("Stats.Unblamable = %d, want 3", s.Unblamable)
	}
	ent, _ := e.Store().Get(t.Context(), flawless.WeekStart(fixtureNow, time.UTC), flawless.UnblamableKey)
	if ent.Count != 2 || !ent.Unblamable {
		t.Errorf("unblamable entry: count %d, flag %v", ent.Count, ent.Unblamable)
	}
}

func TestInvalidAddressesAreDroppedAndReported(t *testing.T) {
	rec := &recorder{}
	set := mustRules(t, rules.Options{}, map[string]string{})
	set.Watches = []rules.Watch{{Email: "bad address", Filepath: "coreservices", WatchAllErrors: true}}
	e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Threshold: 1, Policy: set, DefaultContact: "ops@example.com"})
	e.Report(t.Context(), newReport("h", "m", serviceFrame))
	settle(t, e)
	closeEngine(t, e)
	ns := rec.Notices(flawless.NoticeError)
	if len(ns) != 1 || len(ns[0].To) != 1 || ns[0].To[0] != "wishbone@shopkick.com" {
		t.Errorf("error notices = %+v, want one to the developer only", ns)
	}
	ps := rec.Notices(flawless.NoticeProblem)
	if len(ps) != 1 || !strings.Contains(ps[0].Problem, "Not sending to: bad address") {
		t.Errorf("problem notices = %+v", ps)
	}
}

func TestInvalidDefaultContactIsOnlyLogged(t *testing.T) {
	rec := &recorder{}
	e := flawless.New(flawless.Config{Notifier: rec, DefaultContact: "not an address"})
	e.Report(t.Context(), newReport("h", "m", report.Frame{Function: "runtime.main", File: "/usr/local/go/src/runtime/proc.go", Line: 1}))
	settle(t, e)
	closeEngine(t, e)
	if rec.Calls() != 0 {
		t.Errorf("%d notifications with an invalid default contact, want none", rec.Calls())
	}
}

type panickingSource struct{}

func (panickingSource) Locate(context.Context, report.Build, report.Frame) (flawless.Location, error) {
	panic("source broke")
}

func TestPanicsNeverEscape(t *testing.T) {
	e := flawless.New(flawless.Config{Source: panickingSource{}})
	defer closeEngine(t, e)
	err := e.Report(t.Context(), newReport("h", "m", serviceFrame))
	if err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Errorf("Report = %v, want an error carrying the panic", err)
	}
	notifierPanics := flawless.NotifierFunc(func(context.Context, *flawless.Notice) error { panic("notifier broke") })
	e2 := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: notifierPanics, Threshold: 1, RetryInterval: time.Hour})
	e2.Report(t.Context(), newReport("h", "m", serviceFrame))
	settle(t, e2)
	closeEngine(t, e2)
	ent, _ := e2.Store().Get(t.Context(), e2.Week(time.Now()), key(serviceFrame))
	if ent.Pending == nil || !strings.Contains(ent.Pending.LastError, "notifier panicked: notifier broke") {
		t.Errorf("a panicking notifier left pending %+v, want a retry with the panic as the error", ent.Pending)
	}
}

func TestReportRejectsEmptyReports(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer closeEngine(t, e)
	for _, r := range []*report.Report{nil, {Message: "no frames"}} {
		if err := e.Report(t.Context(), r); err == nil {
			t.Errorf("Report(%+v) = nil, want an error", r)
		}
	}
}

func TestReportAfterCloseCountsAndSaysClosed(t *testing.T) {
	e := flawless.New(flawless.Config{})
	closeEngine(t, e)
	if err := e.Report(t.Context(), newReport("h", "m", serviceFrame)); !errors.Is(err, flawless.ErrClosed) {
		t.Errorf("Report after Close = %v, want ErrClosed", err)
	}
	if ent, err := e.Store().Get(t.Context(), e.Week(time.Now()), key(serviceFrame)); err != nil || ent.Count != 1 {
		t.Errorf("the report was not counted: %+v, %v", ent, err)
	}
}

// slowBlamer blocks until released.
type slowBlamer struct {
	release chan struct{}
	calls   atomic.Int64
}

func (b *slowBlamer) Blame(ctx context.Context, _ flawless.Location, _ int) (flawless.Author, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
		return flawless.Author{}, ctx.Err()
	}
	return fixtureAuthor, nil
}

func TestQueueIsBoundedAndReportNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &slowBlamer{release: make(chan struct{})}
		e := flawless.New(flawless.Config{Blamer: b, Workers: 1, QueueSize: 2})
		for i := range 50 {
			r := newReport("h", "m", frame(fmt.Sprintf("pkg%d/f.go", i), 1, "F", "x"))
			if err := e.Report(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // every Report returned while the only worker is stuck
		if s := e.Stats(); s.QueueFull < 40 {
			t.Errorf("QueueFull = %d, want the reports that did not fit", s.QueueFull)
		}
		close(b.release)
		time.Sleep(10 * time.Minute) // the sweeper finds the work left in the store
		synctest.Wait()
		ents, _ := e.Store().Entries(t.Context(), e.Week(time.Now()))
		blamed := 0
		for _, ent := range ents {
			if ent.Blamed {
				blamed++
			}
		}
		if blamed != 50 || b.calls.Load() != 50 {
			t.Errorf("%d of 50 entries blamed with %d calls, want all, once each", blamed, b.calls.Load())
		}
		closeEngine(t, e)
	})
}

func TestSetPolicyTakesEffect(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer closeEngine(t, e)
	r := newReport("h", "m", frame("lib/doghouse/base.go", 9, "GetRequestParam", `panic(BadRequestError("Missing param " + name))`), serviceFrame)
	e.Report(t.Context(), r)
	x := e.Explain(t.Context(), r, "")
	if f, _ := x.BlamedFrame(); f.Path != "lib/doghouse/base.go" {
		t.Fatalf("without rules blamed %q", f.Path)
	}
	e.SetPolicy(mustRules(t, rules.Options{}, fixtureRules))
	e.Report(t.Context(), r)
	ents, _ := e.Store().Entries(t.Context(), e.Week(time.Now()))
	if len(ents) != 2 {
		t.Errorf("after new rules the same stack made %d entries, want a second one blamed on the caller", len(ents))
	}
	x = e.Explain(t.Context(), r, "")
	if f, _ := x.BlamedFrame(); f.Path != "coreservices/service.go" || x.Frames[0].Verdict != flawless.VerdictBuildingBlock || x.Frames[0].Rule != "building_blocks.toml:2" {
		t.Errorf("with rules: blamed %q; first frame %+v", f.Path, x.Frames[0])
	}
}

func TestExplainRoutesAsBlameWould(t *testing.T) {
	e := flawless.New(flawless.Config{Policy: mustRules(t, rules.Options{}, fixtureRules)})
	defer closeEngine(t, e)
	x := e.Explain(t.Context(), newReport("h", "m", frame("scripts/my_script.go", 7, "RunAll", "code"), frame("tools/furminator.go", 3, "F", "y")), "wishbone@shopkick.com")
	if x.Route.Developer != "lassie@shopkick.com" || strings.Join(x.Route.Watchers, ",") != "wilfred@shopkick.com,lassie@shopkick.com" {
		t.Errorf("Route = %+v", x.Route)
	}
	ignored := newReport("h", "m", serviceFrame)
	ignored.Type = "*shop.BananaError"
	if x := e.Explain(t.Context(), ignored, ""); !x.Ignored || !x.Dropped() {
		t.Errorf("Explain of an ignored type = %+v", x.Classification)
	}
}

func TestNeverBlameLines(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer closeEngine(t, e)
	tests := []struct {
		text string
		want bool // blamed
	}{
		{"panic(r)", false},
		{"\tpanic( err )", false},
		{"panic(v);", false},
		{"panic(fmt.Sprintf(\"bad %d\", n))", true},
		{"panic(\"unreachable\")", true},
		{"mypanic(r)", true},
	}
	for _, tt := range tests {
		x := e.Explain(t.Context(), newReport("h", "m", frame("a/a.go", 1, "F", tt.text), serviceFrame), "")
		f, _ := x.BlamedFrame()
		if got := f.Path == "a/a.go"; got != tt.want {
			t.Errorf("line %q blamed = %v, want %v", tt.text, got, tt.want)
		}
	}
}
