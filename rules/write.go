package rules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Append adds entry to the rule file of its kind in dir, as a new [[table]]
// at the end. Every byte already in the file, comments included, is kept.
// The new content is checked as Load would check it, and written to a
// temporary file that then replaces the old one, so readers see the old
// file or the new one, never a part. entry is a CodeRule (with kind
// KindBuildingBlock or KindThirdParty), KnownError, IgnoredException, Watch,
// Disown or Remap.
func Append(dir string, k Kind, entry any) error {
	if !validEntry(k, entry) {
		return fmt.Errorf("append to %s: a %T is not a [[%s]] entry", k.File, entry, k.Table)
	}
	table, err := toml.Marshal(map[string]any{k.Table: []any{entry}})
	if err != nil {
		return fmt.Errorf("append to %s: %w", k.File, err)
	}
	name := filepath.Join(dir, k.File)
	old, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("append to %s: %w", k.File, err)
	}
	var buf bytes.Buffer
	buf.Write(old)
	if len(old) > 0 {
		if !bytes.HasSuffix(old, []byte("\n")) {
			buf.WriteByte('\n')
		}
		buf.WriteByte('\n')
	}
	buf.Write(table)
	if _, err := Parse(k.File, buf.Bytes(), Options{}); err != nil {
		return fmt.Errorf("append to %s: %w", k.File, err)
	}
	perm := fs.FileMode(0o644)
	if st, err := os.Stat(name); err == nil {
		perm = st.Mode().Perm()
	}
	return writeAtomic(name, buf.Bytes(), perm)
}

func validEntry(k Kind, entry any) bool {
	switch entry.(type) {
	case CodeRule, *CodeRule:
		return k == KindBuildingBlock || k == KindThirdParty
	case KnownError, *KnownError:
		return k == KindKnownError
	case IgnoredException, *IgnoredException:
		return k == KindIgnoredException
	case Watch, *Watch:
		return k == KindWatch
	case Disown, *Disown:
		return k == KindDisown
	case Remap, *Remap:
		return k == KindRemap
	}
	return false
}

// writeAtomic writes data to a temporary file beside name, syncs it, and
// renames it over name.
func writeAtomic(name string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Loader keeps the rules of a directory current: it reloads them when the
// files change, and keeps the last good rules when a changed file has a
// problem. Its methods are safe for concurrent use.
type Loader struct {
	// Dir is the rules directory.
	Dir string
	// Options shape address normalisation.
	Options Options
	// Logger hears about reloads and bad files. Nil: nothing is logged.
	Logger *slog.Logger
	// OnChange, if set, is called with each newly loaded Set.
	OnChange func(*Set)

	mu      sync.Mutex
	current *Set
	stamp   [32]byte
}

// Load reads the rules now. It returns the Set, or the error with every
// problem found; on error the Loader keeps the rules it had.
func (l *Loader) Load() (*Set, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.reloadLocked(true)
	if err != nil {
		return nil, err
	}
	return l.current, nil
}

// Current returns the last good rules, or nil before the first good load.
func (l *Loader) Current() *Set {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current
}

// Reload reads the rules again if a file changed since the last load. It
// reports whether new rules took effect; on error the last good rules stay.
func (l *Loader) Reload() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reloadLocked(false)
}

func (l *Loader) reloadLocked(force bool) (bool, error) {
	stamp := l.fingerprint()
	if !force && stamp == l.stamp && l.current != nil {
		return false, nil
	}
	s, err := Load(os.DirFS(l.Dir), l.Options)
	if err != nil {
		l.stamp = stamp // do not log the same bad file every poll
		l.logger().Error("rule files have problems; keeping the last good rules", "dir", l.Dir, "err", err)
		return false, err
	}
	l.current, l.stamp = s, stamp
	l.logger().Info("rules loaded", "dir", l.Dir, "building_blocks", len(s.BuildingBlocks), "third_party", len(s.ThirdParty),
		"known_errors", len(s.KnownErrors), "ignored_exceptions", len(s.IgnoredExceptions), "watches", len(s.Watches),
		"disowns", len(s.Disowns), "remaps", len(s.Remaps))
	if l.OnChange != nil {
		l.OnChange(s)
	}
	return true, nil
}

// fingerprint hashes the content of every rule file, so that any change,
// even within the same second, is seen.
func (l *Loader) fingerprint() [32]byte {
	h := sha256.New()
	for _, k := range Kinds {
		data, err := os.ReadFile(filepath.Join(l.Dir, k.File))
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", k.File, errors.Is(err, fs.ErrNotExist))
			continue
		}
		fmt.Fprintf(h, "%s %d\n", k.File, len(data))
		h.Write(data)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Watch reloads the rules every interval until ctx ends.
func (l *Loader) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Reload()
		}
	}
}

func (l *Loader) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}
