package flawless

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/flawless-go/flawless/report"
)

// MemStore is a Store in memory, for the life of the process. It is the
// Store of an Engine whose Config has none. The zero MemStore is ready to
// use.
type MemStore struct {
	mu    sync.Mutex
	weeks map[int64]map[report.Key]*Entry
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

var _ Weeks = (*MemStore)(nil)

func (s *MemStore) week(week time.Time, create bool) map[report.Key]*Entry {
	w := s.weeks[week.Unix()]
	if w == nil && create {
		if s.weeks == nil {
			s.weeks = make(map[int64]map[report.Key]*Entry)
		}
		w = make(map[report.Key]*Entry)
		s.weeks[week.Unix()] = w
	}
	return w
}

// Add implements Store.
func (s *MemStore) Add(_ context.Context, week time.Time, key report.Key, o Occurrence) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.week(week, true)
	e := w[key]
	if e == nil {
		e = &Entry{Key: key, Week: week}
		w[key] = e
	}
	AddOccurrence(e, o)
	return copyEntry(e), nil
}

// applyOccurrence adds o to e; stores share it so they count alike.
func applyOccurrence(e *Entry, o Occurrence) {
	e.Count += o.Count
	if o.Time.After(e.LastSeen) || e.Last == nil {
		e.LastSeen = o.Time
		e.Last = o.Report
		e.Classification = o.Classification
		if o.Report != nil {
			e.Threshold = o.Report.Threshold
		}
	}
	if c := o.Classification; c != nil {
		e.Known = c.Known != nil
		e.Unblamable = c.Blamed < 0
	}
}

// AddOccurrence applies an occurrence to an entry the way Store.Add must:
// the count grows by o.Count, and o becomes the latest occurrence unless a
// later one is already recorded. Store implementations use it so that they
// all count alike.
func AddOccurrence(e *Entry, o Occurrence) {
	if o.Count < 1 {
		o.Count = 1
	}
	if e.FirstSeen.IsZero() {
		e.FirstSeen = o.Time
	}
	applyOccurrence(e, o)
}

func copyEntry(e *Entry) Entry { return e.Clone() }

// Get implements Store.
func (s *MemStore) Get(_ context.Context, week time.Time, key report.Key) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.week(week, false)[key]
	if e == nil {
		return Entry{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return copyEntry(e), nil
}

// Update implements Store.
func (s *MemStore) Update(_ context.Context, week time.Time, key report.Key, fn func(*Entry) bool) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.week(week, false)[key]
	if e == nil {
		return Entry{}, fmt.Errorf("update %s: %w", key, ErrNotFound)
	}
	c := copyEntry(e)
	if fn(&c) {
		c.Key, c.Week = e.Key, e.Week
		*e = copyEntry(&c)
	}
	return copyEntry(e), nil
}

// Entries implements Store.
func (s *MemStore) Entries(_ context.Context, week time.Time) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.week(week, false)
	out := make([]Entry, 0, len(w))
	for _, e := range w {
		out = append(out, copyEntry(e))
	}
	return out, nil
}

// Pending implements Store.
func (s *MemStore) Pending(context.Context) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, w := range s.weeks {
		for _, e := range w {
			if NeedsWork(e) {
				out = append(out, copyEntry(e))
			}
		}
	}
	return out, nil
}

// NeedsWork reports whether an entry belongs in Store.Pending's answer:
// not yet blamed, or with a notification pending, or an unblamable entry
// whose problem has not been reported.
func NeedsWork(e *Entry) bool {
	if e.Unblamable {
		return !e.ProblemReported
	}
	return !e.Blamed || e.Pending != nil
}

// Weeks implements Weeks.
func (s *MemStore) Weeks(context.Context) ([]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Time, 0, len(s.weeks))
	for _, w := range s.weeks {
		for _, e := range w {
			out = append(out, e.Week)
			break
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return b.Compare(a) })
	return out, nil
}
