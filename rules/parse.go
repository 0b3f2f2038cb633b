package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"path"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// ParseError is a problem in a rule file, at a line and column (both
// 1-based; Column is 0 when only the line is known). It prints as
// "file:line:col: message", which editors can jump to.
type ParseError struct {
	File   string
	Line   int
	Column int
	Err    error
}

func (e *ParseError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Kind is one kind of rule: the file it lives in and the name of its
// tables.
type Kind struct {
	File  string // "known_errors.toml"
	Table string // "known_error", written [[known_error]]
}

// The kinds of rule, one file each.
var (
	KindBuildingBlock    = Kind{"building_blocks.toml", "building_block"}
	KindThirdParty       = Kind{"third_party_whitelist.toml", "third_party"}
	KindKnownError       = Kind{"known_errors.toml", "known_error"}
	KindIgnoredException = Kind{"ignored_exceptions.toml", "ignored_exception"}
	KindWatch            = Kind{"watched_files.toml", "watch"}
	KindDisown           = Kind{"disownership.toml", "disown"}
	KindRemap            = Kind{"email_remapping.toml", "remap"}
)

// Kinds lists every kind of rule.
var Kinds = []Kind{KindBuildingBlock, KindThirdParty, KindKnownError, KindIgnoredException, KindWatch, KindDisown, KindRemap}

// KindOf returns the kind whose file or table is named name.
func KindOf(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.File == name || k.Table == name || strings.TrimSuffix(k.File, ".toml") == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Load reads every rule file from the root of fsys (os.DirFS(dir) in
// production, fstest.MapFS in tests). A missing file is an empty list. All
// the problems found, in every file, are returned joined, each a
// *ParseError.
func Load(fsys fs.FS, opts Options) (*Set, error) {
	s := &Set{Options: opts}
	var errs []error
	for _, k := range Kinds {
		data, err := fs.ReadFile(fsys, k.File)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read rules: %w", err))
			continue
		}
		if err := s.parse(k, k.File, data); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := s.compile(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse reads one rule file's content into a new Set; the kind is decided
// by the file's base name (known_errors.toml, …).
func Parse(name string, data []byte, opts Options) (*Set, error) {
	k, ok := KindOf(path.Base(name))
	if !ok {
		return nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("not a rule file: the name must be one of %s", kindFiles())}
	}
	s := &Set{Options: opts}
	if err := s.parse(k, name, data); err != nil {
		return nil, err
	}
	if err := s.compile(); err != nil {
		return nil, err
	}
	return s, nil
}

func kindFiles() string {
	var names []string
	for _, k := range Kinds {
		names = append(names, k.File)
	}
	return strings.Join(names, ", ")
}

// parse decodes and checks one file of kind k and appends its entries to s.
func (s *Set) parse(k Kind, name string, data []byte) error {
	t := &Set{}
	lines := newLineIndex(data, k.Table)
	if err := t.decode(k, name, data, lines); err != nil {
		return err
	}
	err := t.validate(func(file string) *lineIndex {
		if file == name {
			return lines
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.BuildingBlocks = append(s.BuildingBlocks, t.BuildingBlocks...)
	s.ThirdParty = append(s.ThirdParty, t.ThirdParty...)
	s.KnownErrors = append(s.KnownErrors, t.KnownErrors...)
	s.IgnoredExceptions = append(s.IgnoredExceptions, t.IgnoredExceptions...)
	s.Watches = append(s.Watches, t.Watches...)
	s.Disowns = append(s.Disowns, t.Disowns...)
	s.Remaps = append(s.Remaps, t.Remaps...)
	return nil
}

func (s *Set) decode(k Kind, name string, data []byte, lines *lineIndex) error {
	var err error
	switch k {
	case KindBuildingBlock:
		err = decode(name, k.Table, data, lines, &s.BuildingBlocks, func(r *CodeRule, p Pos) { r.Pos = p })
	case KindThirdParty:
		err = decode(name, k.Table, data, lines, &s.ThirdParty, func(r *CodeRule, p Pos) { r.Pos = p })
	case KindKnownError:
		err = decode(name, k.Table, data, lines, &s.KnownErrors, func(r *KnownError, p Pos) { r.Pos = p })
	case KindIgnoredException:
		err = decode(name, k.Table, data, lines, &s.IgnoredExceptions, func(r *IgnoredException, p Pos) { r.Pos = p })
	case KindWatch:
		err = decode(name, k.Table, data, lines, &s.Watches, func(r *Watch, p Pos) { r.Pos = p })
	case KindDisown:
		err = decode(name, k.Table, data, lines, &s.Disowns, func(r *Disown, p Pos) { r.Pos = p })
	case KindRemap:
		err = decode(name, k.Table, data, lines, &s.Remaps, func(r *Remap, p Pos) { r.Pos = p })
	}
	return err
}

// decode reads the [[table]] entries of one file, strictly, into *dst,
// recording each entry's position.
func decode[T any](name, table string, data []byte, lines *lineIndex, dst *[]T, setPos func(*T, Pos)) error {
	var doc map[string][]T
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return tomlError(name, err)
	}
	for key := range doc {
		if key != table {
			line, col := lines.keyPos(key)
			return &ParseError{File: name, Line: line, Column: col, Err: fmt.Errorf("unknown table %q: this file holds [[%s]] entries", key, table)}
		}
	}
	entries := doc[table]
	for i := range entries {
		setPos(&entries[i], Pos{File: name, Line: lines.entryLine(i)})
	}
	*dst = append(*dst, entries...)
	return nil
}

// tomlError turns go-toml's errors into ParseErrors.
func tomlError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var errs []error
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, col := de.Position()
			errs = append(errs, &ParseError{File: name, Line: line, Column: col, Err: fmt.Errorf("unknown key %q", strings.Join(de.Key(), "."))})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return &ParseError{File: name, Line: line, Column: col, Err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
	}
	return &ParseError{File: name, Line: 1, Err: err}
}

// validate checks every entry; at looks up the line index of a file, to
// place a field's error on its own line.
func (s *Set) validate(at func(file string) *lineIndex) error {
	var errs []error
	bad := func(p Pos, entry int, field, format string, args ...any) {
		e := &ParseError{File: p.File, Line: p.Line, Err: fmt.Errorf(field+": "+format, args...)}
		if at != nil {
			if x := at(p.File); x != nil {
				e.Line, e.Column = x.fieldPos(entry, field)
			}
		}
		if e.File == "" {
			e.File, e.Line = "(rules)", entry+1
		}
		errs = append(errs, e)
	}
	checkCode := func(rs []CodeRule) {
		for i, r := range rs {
			if strings.TrimSpace(r.Filename) == "" {
				bad(r.Pos, entryIndex(rs, i, func(r CodeRule) string { return r.Pos.File }), "filename", "missing: name the repository path the rule is about")
			}
		}
	}
	checkCode(s.BuildingBlocks)
	checkCode(s.ThirdParty)
	for i, k := range s.KnownErrors {
		n := entryIndex(s.KnownErrors, i, func(k KnownError) string { return k.Pos.File })
		if strings.TrimSpace(k.Filename) == "" {
			bad(k.Pos, n, "filename", "missing: name the repository path the rule is about")
		}
		if v := k.MinAlertThreshold; v != nil && *v < 0 {
			bad(k.Pos, n, "min_alert_threshold", "negative value %d", *v)
		}
		if v := k.MaxAlertThreshold; v != nil && *v < 0 {
			bad(k.Pos, n, "max_alert_threshold", "negative value %d", *v)
		}
		if v := k.AlertEveryNOccurrences; v != nil && *v < 1 {
			bad(k.Pos, n, "alert_every_n_occurrences", "must be at least 1, not %d", *v)
		}
		if k.MinAlertThreshold != nil && k.MaxAlertThreshold != nil && *k.MinAlertThreshold > *k.MaxAlertThreshold {
			bad(k.Pos, n, "min_alert_threshold", "%d is above max_alert_threshold %d, so the rule would never alert (to silence an error, set only max_alert_threshold = 0)", *k.MinAlertThreshold, *k.MaxAlertThreshold)
		}
		for _, a := range k.EmailRecipients {
			if err := checkAddress(a); err != nil {
				bad(k.Pos, n, "email_recipients", "%v", err)
			}
		}
	}
	for i, ie := range s.IgnoredExceptions {
		n := entryIndex(s.IgnoredExceptions, i, func(e IgnoredException) string { return e.Pos.File })
		if ie.Type == "" && ie.MessageMatching == "" {
			bad(ie.Pos, n, "type", "missing: give type, message_matching, or both")
		}
		if ie.MessageMatching != "" {
			if _, err := regexp.Compile(ie.MessageMatching); err != nil {
				bad(ie.Pos, n, "message_matching", "bad regular expression: %v", err)
			}
		}
	}
	for i, w := range s.Watches {
		n := entryIndex(s.Watches, i, func(w Watch) string { return w.Pos.File })
		if err := checkAddress(w.Email); err != nil {
			bad(w.Pos, n, "email", "%v", err)
		}
		if cleanPath(w.Filepath) == "" {
			bad(w.Pos, n, "filepath", "missing: name a file or directory of the repository")
		}
	}
	for i, d := range s.Disowns {
		n := entryIndex(s.Disowns, i, func(d Disown) string { return d.Pos.File })
		if cleanPath(d.Filepath) == "" {
			bad(d.Pos, n, "filepath", "missing: name a file or directory of the repository")
		}
		if err := checkAddress(d.Email); err != nil {
			bad(d.Pos, n, "email", "%v", err)
		}
		if err := checkAddress(d.DesignatedEmail); err != nil {
			bad(d.Pos, n, "designated_email", "%v", err)
		}
	}
	for i, r := range s.Remaps {
		n := entryIndex(s.Remaps, i, func(r Remap) string { return r.Pos.File })
		if strings.TrimSpace(r.Remap) == "" {
			bad(r.Pos, n, "remap", "missing: give an address or the part before the @")
		}
		if err := checkAddress(r.To); err != nil {
			bad(r.Pos, n, "to", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// entryIndex returns the index of entry i among the entries of the same
// file: the number of the [[table]] it was written in.
func entryIndex[T any](all []T, i int, file func(T) string) int {
	n := 0
	for j := 0; j < i; j++ {
		if file(all[j]) == file(all[i]) {
			n++
		}
	}
	return n
}

// checkAddress accepts a bare email address ("ann@example.com").
func checkAddress(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("missing email address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != strings.TrimSpace(s) || a.Name != "" {
		return fmt.Errorf("%q is not a valid email address", s)
	}
	return nil
}

// lineIndex finds where the entries and keys of a rule file are written.
type lineIndex struct {
	lines   []string
	headers []int // 0-based line of each [[table]] header, in order
}

func newLineIndex(data []byte, table string) *lineIndex {
	x := &lineIndex{lines: strings.Split(string(data), "\n")}
	header := regexp.MustCompile(`^\s*\[\[\s*"?` + regexp.QuoteMeta(table) + `"?\s*\]\]`)
	for i, l := range x.lines {
		if header.MatchString(l) {
			x.headers = append(x.headers, i)
		}
	}
	return x
}

// entryLine returns the 1-based line of entry i's header, or 1.
func (x *lineIndex) entryLine(i int) int {
	if i < len(x.headers) {
		return x.headers[i] + 1
	}
	return 1
}

// fieldPos returns the line and column of key in entry i, or the entry's
// header line when the key is not written there.
func (x *lineIndex) fieldPos(i int, key string) (int, int) {
	if i >= len(x.headers) {
		return 1, 0
	}
	end := len(x.lines)
	for j := x.headers[i] + 1; j < len(x.lines); j++ {
		if strings.HasPrefix(strings.TrimSpace(x.lines[j]), "[") {
			end = j
			break
		}
	}
	re := regexp.MustCompile(`^(\s*)"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for j := x.headers[i] + 1; j < end; j++ {
		if m := re.FindStringSubmatchIndex(x.lines[j]); m != nil {
			return j + 1, m[3] + 1
		}
	}
	return x.headers[i] + 1, 1
}

// keyPos returns where a top-level key or table is written.
func (x *lineIndex) keyPos(key string) (int, int) {
	re := regexp.MustCompile(`^(\s*\[*\s*)"?` + regexp.QuoteMeta(key) + `"?\s*[\]=.]`)
	for j, l := range x.lines {
		if m := re.FindStringSubmatchIndex(l); m != nil {
			return j + 1, m[3] + 1
		}
	}
	return 1, 0
}
