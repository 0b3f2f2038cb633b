// Package storetest checks a flawless.Store against the contract the engine
// relies on: atomic counts, atomic updates (so that exactly one caller
// claims a notification), weekly partitions, copies not aliases, and the
// listing of pending work. Every Store implementation runs it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) flawless.Store { return open(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Run runs the conformance tests; newStore returns a new, empty store for
// each test and arranges its closing with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) flawless.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s flawless.Store)
	}{
		{"AddCreatesAndCounts", testAddCreatesAndCounts},
		{"AddKeepsTheLatestOccurrence", testAddKeepsLatest},
		{"MissingEntries", testMissing},
		{"Update", testUpdate},
		{"UpdateCannotMoveAnEntry", testUpdateCannotMove},
		{"ReturnsCopies", testCopies},
		{"WeeksArePartitions", testWeeks},
		{"Pending", testPending},
		{"ConcurrentAddsAreExact", testConcurrentAdds},
		{"ExactlyOneClaim", testExactlyOneClaim},
		{"RoundTripsEveryField", testRoundTrip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

var (
	week1 = time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	week2 = week1.AddDate(0, 0, 7)
	keyA  = report.Key{Path: "cart/cart.go", Function: "github.com/acme/shop/cart.(*Cart).Add", Text: "return c.items[i], nil"}
	keyB  = report.Key{Path: "main.go", Function: "main.main", Line: 12}
)

func occurrence(n int, at time.Time, msg string) flawless.Occurrence {
	r := &report.Report{
		Time: at, Hostname: "web-1", Type: "runtime.boundsError", Message: msg,
		Frames: []report.Frame{{Function: keyA.Function, File: "/src/shop/cart/cart.go", Line: 41}},
	}
	c := &flawless.Classification{
		Blamed: 0, Key: keyA,
		Frames: []flawless.FrameInfo{{Path: keyA.Path, Function: keyA.Function, Line: 41, Text: keyA.Text, InRepo: true}},
	}
	return flawless.Occurrence{Report: r, Count: n, Time: at, Classification: c}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func testAddCreatesAndCounts(t *testing.T, s flawless.Store) {
	t0 := week1.Add(time.Hour)
	e, err := s.Add(ctx(t), week1, keyA, occurrence(1, t0, "first"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Count != 1 || e.Key != keyA || !e.Week.Equal(week1) || !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0) {
		t.Errorf("first Add = count %d, key %v, week %v, first %v, last %v", e.Count, e.Key, e.Week, e.FirstSeen, e.LastSeen)
	}
	e, err = s.Add(ctx(t), week1, keyA, occurrence(5, t0.Add(time.Minute), "second"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Count != 6 {
		t.Errorf("count after adding 1 and 5 = %d, want 6", e.Count)
	}
	if !e.FirstSeen.Equal(t0) {
		t.Errorf("FirstSeen moved to %v", e.FirstSeen)
	}
	e, err = s.Add(ctx(t), week1, keyA, occurrence(0, t0.Add(2*time.Minute), "zero means one"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Count != 7 {
		t.Errorf("an occurrence with Count 0 added %d, want 1", e.Count-6)
	}
}

func testAddKeepsLatest(t *testing.T, s flawless.Store) {
	t0 := week1.Add(time.Hour)
	mustAdd(t, s, week1, keyA, occurrence(1, t0, "old"))
	e := mustAdd(t, s, week1, keyA, occurrence(1, t0.Add(time.Minute), "new"))
	if e.Last == nil || e.Last.Message != "new" || !e.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("latest occurrence = %+v at %v, want the message \"new\"", e.Last, e.LastSeen)
	}
	if e.Classification == nil || e.Classification.Key != keyA {
		t.Errorf("Classification = %+v, want the occurrence's", e.Classification)
	}
}

func mustAdd(t *testing.T, s flawless.Store, week time.Time, key report.Key, o flawless.Occurrence) flawless.Entry {
	t.Helper()
	e, err := s.Add(ctx(t), week, key, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testMissing(t *testing.T, s flawless.Store) {
	if _, err := s.Get(ctx(t), week1, keyA); !errors.Is(err, flawless.ErrNotFound) {
		t.Errorf("Get of a missing entry: err = %v, want ErrNotFound", err)
	}
	called := false
	if _, err := s.Update(ctx(t), week1, keyA, func(*flawless.Entry) bool { called = true; return true }); !errors.Is(err, flawless.ErrNotFound) {
		t.Errorf("Update of a missing entry: err = %v, want ErrNotFound", err)
	}
	if called {
		t.Error("Update called fn for a missing entry")
	}
	ents, err := s.Entries(ctx(t), week1)
	if err != nil || len(ents) != 0 {
		t.Errorf("Entries of an empty week = %v, %v", ents, err)
	}
}

func testUpdate(t *testing.T, s flawless.Store) {
	mustAdd(t, s, week1, keyA, occurrence(1, week1, "x"))
	e, err := s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
		e.Developer = "ann@example.com"
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.Developer != "" {
		t.Errorf("fn returned false but the change was kept: %q", e.Developer)
	}
	e, err = s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
		e.Developer = "ann@example.com"
		e.Blamed = true
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if e.Developer != "ann@example.com" || got.Developer != "ann@example.com" || !got.Blamed {
		t.Errorf("after Update: returned %q, stored %q (blamed %v)", e.Developer, got.Developer, got.Blamed)
	}
	if got.Count != 1 {
		t.Errorf("Update changed the count to %d", got.Count)
	}
}

func testUpdateCannotMove(t *testing.T, s flawless.Store) {
	mustAdd(t, s, week1, keyA, occurrence(1, week1, "x"))
	if _, err := s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
		e.Key, e.Week = keyB, week2
		e.Developer = "moved"
		return true
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatalf("the entry moved away: %v", err)
	}
	if got.Key != keyA || !got.Week.Equal(week1) || got.Developer != "moved" {
		t.Errorf("entry = key %v week %v developer %q", got.Key, got.Week, got.Developer)
	}
	if _, err := s.Get(ctx(t), week2, keyB); !errors.Is(err, flawless.ErrNotFound) {
		t.Errorf("an entry appeared under the key set by fn: %v", err)
	}
}

func testCopies(t *testing.T, s flawless.Store) {
	mustAdd(t, s, week1, keyA, occurrence(1, week1, "x"))
	e, err := s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
		e.Pending = &flawless.Pending{To: []string{"ann@example.com"}}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Count = 99
	e.Pending.To[0] = "mallory@example.com"
	e.Pending.Attempts = 7
	got, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 1 || got.Pending == nil || got.Pending.To[0] != "ann@example.com" || got.Pending.Attempts != 0 {
		t.Errorf("changing a returned entry changed the store: count %d, pending %+v", got.Count, got.Pending)
	}
	var inFn *flawless.Pending
	s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool { inFn = e.Pending; return false })
	inFn.Attempts = 3
	got, _ = s.Get(ctx(t), week1, keyA)
	if got.Pending.Attempts != 0 {
		t.Error("changing the entry given to fn, after fn returned false, changed the store")
	}
}

func testWeeks(t *testing.T, s flawless.Store) {
	mustAdd(t, s, week1, keyA, occurrence(3, week1, "x"))
	mustAdd(t, s, week2, keyA, occurrence(1, week2, "x"))
	mustAdd(t, s, week2, keyB, occurrence(1, week2, "x"))
	e1, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.Get(ctx(t), week2, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Count != 3 || e2.Count != 1 {
		t.Errorf("counts per week = %d, %d; want 3, 1", e1.Count, e2.Count)
	}
	ents, err := s.Entries(ctx(t), week2)
	if err != nil {
		t.Fatal(err)
	}
	var keys []report.Key
	for _, e := range ents {
		keys = append(keys, e.Key)
	}
	sortKeys := cmpopts.SortSlices(func(a, b report.Key) bool { return a.String() < b.String() })
	if diff := cmp.Diff([]report.Key{keyA, keyB}, keys, sortKeys); diff != "" {
		t.Errorf("Entries(week2) keys mismatch (-want +got):\n%s", diff)
	}
	if w, ok := s.(flawless.Weeks); ok {
		weeks, err := w.Weeks(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(weeks) != 2 || !weeks[0].Equal(week2) || !weeks[1].Equal(week1) {
			t.Errorf("Weeks = %v, want [%v %v]", weeks, week2, week1)
		}
	}
}

func testPending(t *testing.T, s flawless.Store) {
	keys := map[string]report.Key{}
	add := func(name string, fn func(*flawless.Entry)) {
		k := report.Key{Path: name + ".go", Function: "f", Line: 1}
		keys[name] = k
		mustAdd(t, s, week1, k, occurrence(1, week1, name))
		if fn != nil {
			if _, err := s.Update(ctx(t), week1, k, func(e *flawless.Entry) bool { fn(e); return true }); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("unblamed", nil)
	add("blamed", func(e *flawless.Entry) { e.Blamed = true })
	add("pending", func(e *flawless.Entry) {
		e.Blamed = true
		e.Pending = &flawless.Pending{To: []string{"a@example.com"}}
	})
	add("notified", func(e *flawless.Entry) { e.Blamed, e.Notified = true, 1 })
	ents, err := s.Pending(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Key.Path)
	}
	if diff := cmp.Diff([]string{"pending.go", "unblamed.go"}, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Pending mismatch (-want +got):\n%s", diff)
	}
}

func testConcurrentAdds(t *testing.T, s flawless.Store) {
	const goroutines, each = 16, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Add(ctx(t), week1, keyA, occurrence(1, week1.Add(time.Duration(g*each+i)), "x")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	e, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if e.Count != goroutines*each {
		t.Errorf("count after %d concurrent adds = %d", goroutines*each, e.Count)
	}
}

func testExactlyOneClaim(t *testing.T, s flawless.Store) {
	mustAdd(t, s, week1, keyA, occurrence(1, week1, "x"))
	const goroutines = 32
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []int
	)
	for g := range goroutines {
		wg.Go(func() {
			won := false
			_, err := s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
				won = e.Pending == nil
				if won {
					e.Pending = &flawless.Pending{To: []string{fmt.Sprintf("dev%d@example.com", g)}}
				}
				return won
			})
			if err != nil {
				t.Error(err)
			}
			if won {
				mu.Lock()
				wins = append(wins, g)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d goroutines claimed the notification, want exactly 1: %v", len(wins), wins)
	}
	e, _ := s.Get(ctx(t), week1, keyA)
	if want := fmt.Sprintf("dev%d@example.com", wins[0]); e.Pending == nil || e.Pending.To[0] != want {
		t.Errorf("stored claim = %+v, want the winner's %s", e.Pending, want)
	}
}

func testRoundTrip(t *testing.T, s flawless.Store) {
	t0 := week1.Add(26 * time.Hour).Truncate(time.Millisecond)
	o := occurrence(2, t0, "boom")
	o.Report.Vars = []report.Var{{Name: "user", Value: "42"}}
	o.Report.Request = &report.Request{Method: "GET", URL: "/x", Headers: map[string]string{"Accept": "*/*"}}
	o.Report.Build = report.Build{Path: "github.com/acme/shop", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}
	o.Report.Threshold = 4
	max := 10
	o.Classification.Known = &flawless.KnownError{Rule: "known_errors.toml:3", Min: 2, Max: &max, Every: 5, Recipients: []string{"ops@example.com"}, Header: "<b>hi</b>"}
	o.Classification.Revision, o.Classification.Fallback = "abc123", true
	mustAdd(t, s, week1, keyA, o)
	want, err := s.Update(ctx(t), week1, keyA, func(e *flawless.Entry) bool {
		e.Blamed = true
		e.Author = flawless.Author{Name: "Ann", Email: "ann@example.com", Time: t0.Add(-48 * time.Hour), Commit: "0123456789abcdef"}
		e.BlameError = ""
		e.Developer = "ann@example.com"
		e.Notes = []string{"remapped by email_remapping.toml:2"}
		e.Notified = 1
		e.NoticeClaimed = t0
		e.ClaimedAtCount = 2
		e.Pending = &flawless.Pending{To: []string{"ann@example.com", "ops@example.com"}, Created: t0, Attempts: 2, Next: t0.Add(time.Minute), LastError: "421 try later"}
		e.Failed = 1
		e.ProblemReported = true
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), week1, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.AllowUnexported(flawless.Classification{})); diff != "" {
		t.Errorf("stored entry mismatch (-want +got):\n%s", diff)
	}
	if got.Threshold != 4 || !got.Known || got.Classification.Known.Every != 5 || *got.Classification.Known.Max != 10 {
		t.Errorf("threshold %d, known %v, rule %+v", got.Threshold, got.Known, got.Classification.Known)
	}
}
