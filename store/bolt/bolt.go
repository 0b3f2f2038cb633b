// Package bolt is a durable flawless.Store on disk, built on bbolt: the
// server's default store. Past weeks are kept.
//
// A count acknowledged by Add is on disk when Add returns, so it survives
// kill -9 and power loss. Add does not commit a bbolt transaction (several
// page writes and two fsyncs); it appends a small checksummed record to a
// journal beside the database, and one fdatasync serves every Add waiting
// at that moment (group commit). Entries changed since are written to
// bbolt every 200 ms, and before any read or update, after which the
// journal is emptied. Opening a store replays a journal left by a crash;
// a record torn by the crash fails its checksum and was never acknowledged.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	bbolt "go.etcd.io/bbolt"
)

var (
	weeksBucket   = []byte("weeks")   // week (8 bytes) → bucket of key → entry
	pendingBucket = []byte("pending") // week + key → nothing: entries with work left
)

// Store is a flawless.Store in a bbolt file and its journal. It is safe for
// concurrent use; bbolt locks the file against other processes. The caller
// must call Close.
type Store struct {
	db *bbolt.DB
	j  *journal

	mu    sync.Mutex                  // guards dirty and the journal's content
	dirty map[entryID]*flawless.Entry // changed since the last apply, newest state
	stop  chan struct{}
	done  chan struct{}
}

type entryID struct {
	week int64
	key  report.Key
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
	s := &Store{db: db, dirty: map[entryID]*flawless.Entry{}, stop: make(chan struct{}), done: make(chan struct{})}
	if s.j, err = openJournal(path+".journal", s.replay); err != nil {
		db.Close()
		return nil, err
	}
	go s.applier()
	return s, nil
}

// Close writes what the journal holds to the database and closes both.
func (s *Store) Close() error {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	err := s.applyLocked()
	s.mu.Unlock()
	return errors.Join(err, s.j.close(), s.db.Close())
}

// applier writes the changed entries to bbolt every 200 ms.
func (s *Store) applier() {
	defer close(s.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if err := s.applyLocked(); err != nil {
				// Left in the journal; the next apply or the next open retries.
				_ = err
			}
			s.mu.Unlock()
		}
	}
}

// applyLocked writes the dirty entries to bbolt in one transaction, then
// empties the journal. The caller holds s.mu.
func (s *Store) applyLocked() error {
	if len(s.dirty) == 0 {
		return nil
	}
	if err := s.writeDirty(); err != nil {
		return err
	}
	return s.j.reset()
}

// writeDirty writes the dirty entries to bbolt in one transaction.
func (s *Store) writeDirty() error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for id, e := range s.dirty {
			wb, err := tx.Bucket(weeksBucket).CreateBucketIfNotExists(weekID(time.Unix(id.week, 0)))
			if err != nil {
				return err
			}
			if err := save(tx, wb, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: apply the journal: %w", err)
	}
	clear(s.dirty)
	return nil
}

// replay applies the records of a journal left by a crash.
func (s *Store) replay(recs []journalRecord) error {
	for _, r := range recs {
		e, err := s.current(entryID{r.Week.Unix(), r.Key}, r.Week)
		if err != nil {
			return err
		}
		flawless.AddOccurrence(e, r.Occurrence())
		s.dirty[entryID{r.Week.Unix(), r.Key}] = e
	}
	return s.writeDirty() // the journal is emptied by openJournal
}

// current returns the newest state of an entry: dirty, stored, or new.
// The caller holds s.mu (or is replaying before the store is shared).
func (s *Store) current(id entryID, week time.Time) (*flawless.Entry, error) {
	if e := s.dirty[id]; e != nil {
		return e, nil
	}
	var e *flawless.Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		wb := tx.Bucket(weeksBucket).Bucket(weekID(week))
		if wb == nil {
			return nil
		}
		var err error
		e, err = load(wb, keyID(id.key))
		return err
	})
	if err != nil {
		return nil, err
	}
	if e == nil {
		e = &flawless.Entry{Key: id.key, Week: week}
	}
	return e, nil
}

// flush writes what the journal holds to bbolt, so that reads and updates
// see every acknowledged Add.
func (s *Store) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyLocked()
}

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

// Add implements flawless.Store. It returns once the occurrence is in the
// journal on disk.
func (s *Store) Add(_ context.Context, week time.Time, key report.Key, o flawless.Occurrence) (flawless.Entry, error) {
	rec, err := encodeRecord(week, key, o)
	if err != nil {
		return flawless.Entry{}, err
	}
	id := entryID{week.Unix(), key}
	s.mu.Lock()
	e, err := s.current(id, week)
	if err != nil {
		s.mu.Unlock()
		return flawless.Entry{}, err
	}
	seq, err := s.j.append(rec)
	if err != nil {
		s.mu.Unlock()
		return flawless.Entry{}, fmt.Errorf("bolt: add %s: %w", key, err)
	}
	flawless.AddOccurrence(e, o)
	s.dirty[id] = e
	out := e.Clone()
	s.mu.Unlock()
	if err := s.j.sync(seq); err != nil {
		return flawless.Entry{}, fmt.Errorf("bolt: add %s: %w", key, err)
	}
	return out, nil
}

// Get implements flawless.Store.
func (s *Store) Get(_ context.Context, week time.Time, key report.Key) (flawless.Entry, error) {
	if err := s.flush(); err != nil {
		return flawless.Entry{}, err
	}
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
	// Hold s.mu so that no Add of this entry slips between the apply and
	// the update.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.applyLocked(); err != nil {
		return flawless.Entry{}, err
	}
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
	if err := s.flush(); err != nil {
		return nil, err
	}
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
	if err := s.flush(); err != nil {
		return nil, err
	}
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
	if err := s.flush(); err != nil {
		return nil, err
	}
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
