package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flawless-go/flawless/report"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/store/bolt"
	"github.com/flawless-go/flawless/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flawless.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "data", "flawless.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestCrashRecovery leaves a journal as a crash would (the process gone
// before the journal was applied, its last record torn) and opens the
// store again: every whole record is counted.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flawless.db")
	week := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	key := report.Key{Path: "a.go", Function: "f", Line: 1}
	var journal []byte
	for i := range 5 {
		rec, err := bolt.EncodeRecordForTest(week, key, flawless.Occurrence{Count: i + 1, Time: week.Add(time.Duration(i) * time.Hour),
			Report: &report.Report{Message: "m", Frames: []report.Frame{{Function: "f", File: "a.go", Line: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		journal = append(journal, rec...)
	}
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	torn := append(journal, journal[:20]...) // a sixth record cut short
	if err := os.WriteFile(path+".journal", torn, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Get(context.Background(), week, key)
	if err != nil || e.Count != 15 || e.Last == nil || !e.LastSeen.Equal(week.Add(4*time.Hour)) {
		t.Fatalf("after recovery: count %d (want 1+2+3+4+5), last seen %v, %v", e.Count, e.LastSeen, err)
	}
	if st, _ := os.Stat(path + ".journal"); st.Size() != 0 {
		t.Errorf("the journal holds %d bytes after recovery, want 0", st.Size())
	}
}

func TestCountsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flawless.db")
	week := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	key := report.Key{Path: "a.go", Function: "f", Line: 1}
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Add(context.Background(), week, key, flawless.Occurrence{Count: 2, Time: week}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e, err := s.Get(context.Background(), week, key); err != nil || e.Count != 6 {
		t.Errorf("after reopening: %d, %v", e.Count, err)
	}
}

// BenchmarkAddConcurrent counts one repeated error from 8 goroutines, each
// Add waiting until it is on disk, and reports how many share a sync.
func BenchmarkAddConcurrent(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "flawless.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	week := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	key := report.Key{Path: "cart/cart.go", Function: "github.com/acme/shop/cart.Add", Text: "return c.items[i]"}
	r := &report.Report{Hostname: "web-1", Message: "boom", Frames: []report.Frame{{Function: key.Function, File: "/w/cart/cart.go", Line: 7}}}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Add(context.Background(), week, key, flawless.Occurrence{Report: r, Count: 1, Time: week}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(max(1, s.Syncs())), "adds/sync")
}
