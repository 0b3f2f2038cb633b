// Package bolt is a durable flawless.Store in one file on disk, built on
// bbolt: the server's default store. A count acknowledged by Add is on disk
// (fsynced) when Add returns, so it survives kill -9; concurrent Adds are
// grouped into one transaction and one fsync, so a burst of reports costs
// few disk syncs. Past weeks are kept.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	bbolt "go.etcd.io/bbolt"
)

var (
	weeksBucket   = []byte("weeks")   // week (8 bytes) → bucket of key → entry
	pendingBucket = []byte("pending") // week + key → nothing: entries with work left
)

// Store is a flawless.Store in a bbolt file. It is safe for concurrent use,
// also by several goroutines of one process (bbolt locks the file against
// other processes). The caller must call Close.
type Store struct {
	db *bbolt.DB
}

var (
	_ flawless.Store = (*Store)(nil)
	_ flawless.Weeks = (*Store)(nil)
)

// Open opens or creates the store file at path, creating its directory.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	// Group the commits of concurrent reports: a burst shares fsyncs.
	db.MaxBatchDelay = 2 * time.Millisecond
	db.MaxBatchSize = 1000
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{weeksBucket, pendingBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func weekID(week time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(week.Unix()))
	return b
}

func keyID(k report.Key) []byte {
	b, _ := json.Marshal(k)
	return b
}

func pendingID(week time.Time, k report.Key) []byte {
	return append(weekID(week), keyID(k)...)
}

func load(b *bbolt.Bucket, id []byte) (*flawless.Entry, error) {
	raw := b.Get(id)
	if raw == nil {
		return nil, nil
	}
	var e flawless.Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("bolt: decode entry: %w", err)
	}
	return &e, nil
}

// save writes the entry and keeps the pending index in step with it.
func save(tx *bbolt.Tx, b *bbolt.Bucket, e *flawless.Entry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bolt: encode entry: %w", err)
	}
	if err := b.Put(keyID(e.Key), raw); err != nil {
		return err
	}
	p := tx.Bucket(pendingBucket)
	if flawless.NeedsWork(e) {
		return p.Put(pendingID(e.Week, e.Key), nil)
	}
	return p.Delete(pendingID(e.Week, e.Key))
}

// Add implements flawless.Store.
func (s *Store) Add(_ context.Context, week time.Time, key report.Key, o flawless.Occurrence) (flawless.Entry, error) {
	var out flawless.Entry
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		wb, err := tx.Bucket(weeksBucket).CreateBucketIfNotExists(weekID(week))
		if err != nil {
			return err
		}
		e, err := load(wb, keyID(key))
		if err != nil {
			return err
		}
		if e == nil {
			e = &flawless.Entry{Key: key, Week: week}
		}
		flawless.AddOccurrence(e, o)
		out = *e
		return save(tx, wb, e)
	})
	if err != nil {
		return flawless.Entry{}, fmt.Errorf("bolt: add %s: %w", key, err)
	}
	return out, nil
}

// Get implements flawless.Store.
func (s *Store) Get(_ context.Context, week time.Time, key report.Key) (flawless.Entry, error) {
	var out *flawless.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		wb := tx.Bucket(weeksBucket).Bucket(weekID(week))
		if wb == nil {
			return nil
		}
		var err error
		out, err = load(wb, keyID(key))
		return err
	})
	if err != nil {
		return flawless.Entry{}, err
	}
	if out == nil {
		return flawless.Entry{}, fmt.Errorf("bolt: get %s: %w", key, flawless.ErrNotFound)
	}
	return *out, nil
}

// Update implements flawless.Store.
func (s *Store) Update(_ context.Context, week time.Time, key report.Key, fn func(*flawless.Entry) bool) (flawless.Entry, error) {
	var out flawless.Entry
	err := s.db.Update(func(tx *bbolt.Tx) error {
		wb := tx.Bucket(weeksBucket).Bucket(weekID(week))
		if wb == nil {
			return flawless.ErrNotFound
		}
		e, err := load(wb, keyID(key))
		if err != nil {
			return err
		}
		if e == nil {
			return flawless.ErrNotFound
		}
		c := *e
		if fn(&c) {
			c.Key, c.Week = e.Key, e.Week
			if err := save(tx, wb, &c); err != nil {
				return err
			}
			e = &c
		}
		// Decode again so the caller's copy shares nothing with fn's.
		raw, _ := json.Marshal(e)
		return json.Unmarshal(raw, &out)
	})
	if err != nil {
		return flawless.Entry{}, fmt.Errorf("bolt: update %s: %w", key, err)
	}
	return out, nil
}

// Entries implements flawless.Store.
func (s *Store) Entries(_ context.Context, week time.Time) ([]flawless.Entry, error) {
	var out []flawless.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		wb := tx.Bucket(weeksBucket).Bucket(weekID(week))
		if wb == nil {
			return nil
		}
		return wb.ForEach(func(_, raw []byte) error {
			var e flawless.Entry
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Pending implements flawless.Store.
func (s *Store) Pending(context.Context) ([]flawless.Entry, error) {
	var out []flawless.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		weeks := tx.Bucket(weeksBucket)
		return tx.Bucket(pendingBucket).ForEach(func(id, _ []byte) error {
			if len(id) < 8 {
				return nil
			}
			wb := weeks.Bucket(id[:8])
			if wb == nil {
				return nil
			}
			e, err := load(wb, id[8:])
			if err != nil || e == nil {
				return err
			}
			out = append(out, *e)
			return nil
		})
	})
	return out, err
}

// Weeks implements flawless.Weeks: the weeks held, newest first.
func (s *Store) Weeks(context.Context) ([]time.Time, error) {
	var out []time.Time
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(weeksBucket).Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if len(k) == 8 {
				out = append(out, time.Unix(int64(binary.BigEndian.Uint64(k)), 0))
			}
		}
		return nil
	})
	return out, err
}
