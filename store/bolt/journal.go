package bolt

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
)

// journal is an append-only file of occurrences not yet in the database.
// Each record is its length (4 bytes), the CRC-32C of its payload (4
// bytes), and the payload, JSON.
type journal struct {
	f *os.File

	written atomic.Uint64 // records appended (under the Store's mu)

	bufMu sync.Mutex
	buf   []byte // appended records not yet written to the file

	syncMu  sync.Mutex
	cond    *sync.Cond
	synced  uint64 // records known to be on disk
	syncing bool
	err     error // a failed sync: the journal can no longer be trusted
	syncs   atomic.Int64
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalRecord is one occurrence in the journal.
type journalRecord struct {
	Week           time.Time                `json:"w"`
	Key            report.Key               `json:"k"`
	Count          int                      `json:"c"`
	Time           time.Time                `json:"t"`
	Report         *report.Report           `json:"r,omitempty"`
	Classification *flawless.Classification `json:"cl,omitempty"`
}

func (r journalRecord) Occurrence() flawless.Occurrence {
	return flawless.Occurrence{Report: r.Report, Count: r.Count, Time: r.Time, Classification: r.Classification}
}

func encodeRecord(week time.Time, key report.Key, o flawless.Occurrence) ([]byte, error) {
	payload, err := json.Marshal(journalRecord{Week: week, Key: key, Count: o.Count, Time: o.Time, Report: o.Report, Classification: o.Classification})
	if err != nil {
		return nil, fmt.Errorf("bolt: encode occurrence: %w", err)
	}
	rec := make([]byte, 8+len(payload))
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(payload, crcTable))
	copy(rec[8:], payload)
	return rec, nil
}

// openJournal opens the journal at path; records a crash left in it are
// given to replay, and the journal is then emptied.
func openJournal(path string, replay func([]journalRecord) error) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bolt: open journal: %w", err)
	}
	recs, err := readRecords(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	j := &journal{f: f}
	j.cond = sync.NewCond(&j.syncMu)
	if len(recs) > 0 {
		if err := replay(recs); err != nil {
			f.Close()
			return nil, fmt.Errorf("bolt: replay the journal: %w", err)
		}
	}
	if err := j.reset(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// readRecords reads whole, intact records; it stops at the first torn or
// corrupt one (the tail of a write cut by a crash).
func readRecords(f *os.File) ([]journalRecord, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReader(f)
	var out []journalRecord
	for {
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return out, nil
		}
		n := binary.LittleEndian.Uint32(head[0:4])
		if n > 64<<20 {
			return out, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return out, nil
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(head[4:8]) {
			return out, nil
		}
		var rec journalRecord
		if err := json.Unmarshal(payload, &rec); err != nil {
			return out, nil
		}
		out = append(out, rec)
	}
}

// append writes a record; the caller holds the Store's mu, so records are
// numbered in file order. It returns the record's number for sync.
func (j *journal) append(rec []byte) (uint64, error) {
	j.syncMu.Lock()
	err := j.err
	j.syncMu.Unlock()
	if err != nil {
		return 0, err
	}
	j.bufMu.Lock()
	j.buf = append(j.buf, rec...)
	n := j.written.Add(1)
	j.bufMu.Unlock()
	return n, nil
}

// sync returns once record seq is on disk. One caller runs fdatasync for
// everything written so far; the others wait for it (group commit).
func (j *journal) sync(seq uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	for j.synced < seq {
		if j.err != nil {
			return j.err
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		j.syncMu.Unlock()
		target, err := j.writeOut()
		if err == nil {
			err = syscall.Fdatasync(int(j.f.Fd()))
			j.syncs.Add(1)
		}
		j.syncMu.Lock()
		j.syncing = false
		if err != nil {
			j.err = fmt.Errorf("sync journal: %w", err)
		} else if target > j.synced {
			j.synced = target
		}
		j.cond.Broadcast()
	}
	return nil
}

// writeOut writes the buffered records to the file in one write and
// returns how many records the file then holds.
func (j *journal) writeOut() (uint64, error) {
	j.bufMu.Lock()
	buf, n := j.buf, j.written.Load()
	j.buf = nil
	j.bufMu.Unlock()
	if len(buf) > 0 {
		if _, err := j.f.Write(buf); err != nil {
			return 0, fmt.Errorf("write journal: %w", err)
		}
	}
	return n, nil
}

// reset empties the journal once its records are in the database; the
// caller holds the Store's mu, so no append runs meanwhile. Records still
// buffered are dropped too: their entries are in the database.
func (j *journal) reset() error {
	j.bufMu.Lock()
	j.buf = nil
	j.bufMu.Unlock()
	// A sync under way may still write what it took from the buffer; it
	// lands after the truncation and is harmless (already applied) but
	// would be replayed after a crash, so wait for it.
	j.syncMu.Lock()
	for j.syncing {
		j.cond.Wait()
	}
	j.syncMu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("bolt: empty the journal: %w", err)
	}
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return nil
}

func (j *journal) close() error {
	return errors.Join(j.f.Sync(), j.f.Close())
}
