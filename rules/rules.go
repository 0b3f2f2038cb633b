// Package rules reads the rule files that steer Flawless (which frames are
// library code, which errors are known, who watches what) and answers the
// questions the engine asks of them. A *Set implements flawless.Policy.
//
// The rules live in one directory, one TOML file per kind of rule; a missing
// file is an empty list:
//
//	building_blocks.toml        [[building_block]]   filename, function_name, code_fragment
//	third_party_whitelist.toml  [[third_party]]      filename, function_name, code_fragment
//	known_errors.toml           [[known_error]]      filename, function_name, code_fragment,
//	                                                 min_alert_threshold, max_alert_threshold,
//	                                                 alert_every_n_occurrences,
//	                                                 email_recipients, email_header
//	ignored_exceptions.toml     [[ignored_exception]] type, message_matching
//	watched_files.toml          [[watch]]            email, filepath, watch_all_errors
//	disownership.toml           [[disown]]           filepath, email, designated_email
//	email_remapping.toml        [[remap]]            remap, to
//
// Decoding is strict: an unknown key, a value of the wrong type, a bad
// regular expression or an invalid email address is a *ParseError naming
// the file, line and column. The files are meant to be kept in the team's
// repository and unit-tested: load them with Load and ask an engine what it
// would do with a report (flawless.Engine.Explain).
package rules

import (
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
)

// Options are the server settings that shape how addresses are normalised.
type Options struct {
	// EmailDomain replaces the domain of an author address whose domain has
	// no dot (john@laptop), and of every author address when
	// IgnoreVCSDomain is set (email_domain_name).
	EmailDomain string
	// IgnoreVCSDomain: always use EmailDomain for author addresses
	// (ignore_vcs_email_domain).
	IgnoreVCSDomain bool
}

// Pos is where an entry is written.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.File == "" {
		return ""
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// CodeRule is a building block or a third-party whitelist entry: it
// matches frames in the file Filename (a repository path, exact), in the
// function FunctionName (blank: any; the fully qualified or the short form),
// whose line contains CodeFragment or is contained in it, ignoring runs of
// white space (blank: any line).
type CodeRule struct {
	Filename     string `toml:"filename"`
	FunctionName string `toml:"function_name,omitempty"`
	CodeFragment string `toml:"code_fragment,omitempty"`
	Pos          Pos    `toml:"-"`
}

// KnownError is a known-error entry: a CodeRule with alert rules.
type KnownError struct {
	Filename               string   `toml:"filename"`
	FunctionName           string   `toml:"function_name,omitempty"`
	CodeFragment           string   `toml:"code_fragment,omitempty"`
	MinAlertThreshold      *int     `toml:"min_alert_threshold,omitempty"`
	MaxAlertThreshold      *int     `toml:"max_alert_threshold,omitempty"`
	AlertEveryNOccurrences *int     `toml:"alert_every_n_occurrences,omitempty"`
	EmailRecipients        []string `toml:"email_recipients,omitempty"`
	EmailHeader            string   `toml:"email_header,omitempty"`
	Pos                    Pos      `toml:"-"`
}

// IgnoredException drops reports of an error type, or whose message
// matches a regular expression, or both. Type is compared with the report's
// type and with the types of the errors it wraps.
type IgnoredException struct {
	Type            string `toml:"type,omitempty"`
	MessageMatching string `toml:"message_matching,omitempty"`
	Pos             Pos    `toml:"-"`
}

// Watch adds Email to the notifications about Filepath: with
// WatchAllErrors, any error whose stack has a blamable frame in that file
// or under that directory; without, errors blamed on exactly that file.
type Watch struct {
	Email          string `toml:"email"`
	Filepath       string `toml:"filepath"`
	WatchAllErrors bool   `toml:"watch_all_errors"`
	Pos            Pos    `toml:"-"`
}

// Disown makes DesignatedEmail the developer of errors in files at or
// under Filepath that blame assigns to Email.
type Disown struct {
	Filepath        string `toml:"filepath"`
	Email           string `toml:"email"`
	DesignatedEmail string `toml:"designated_email"`
	Pos             Pos    `toml:"-"`
}

// Remap sends mail for the author address Remap (a full address, or the
// part before the @) to To.
type Remap struct {
	Remap string `toml:"remap"`
	To    string `toml:"to"`
	Pos   Pos    `toml:"-"`
}

// Set is a complete set of rules. Build one with Load or Parse; the zero
// Set has no rules. A Set must not be changed once in use; it is safe for
// concurrent use.
type Set struct {
	BuildingBlocks    []CodeRule
	ThirdParty        []CodeRule
	KnownErrors       []KnownError
	IgnoredExceptions []IgnoredException
	Watches           []Watch
	Disowns           []Disown
	Remaps            []Remap
	Options           Options

	idx *index
}

// index is the Set made ready for matching.
type index struct {
	building, third map[string][]int
	known           map[string][]int
	knownRules      []*flawless.KnownError
	ignoreRe        []*regexp.Regexp
	remapFull       map[string]Remap
	remapLocal      map[string]Remap
}

var _ flawless.Policy = (*Set)(nil)

// compile builds the matching index. Parse and Load call it; a Set built
// by hand is compiled on first use by Prepare.
func (s *Set) compile() error {
	x := &index{
		building:   map[string][]int{},
		third:      map[string][]int{},
		known:      map[string][]int{},
		remapFull:  map[string]Remap{},
		remapLocal: map[string]Remap{},
	}
	for i, r := range s.BuildingBlocks {
		x.building[cleanPath(r.Filename)] = append(x.building[cleanPath(r.Filename)], i)
	}
	for i, r := range s.ThirdParty {
		x.third[cleanPath(r.Filename)] = append(x.third[cleanPath(r.Filename)], i)
	}
	for i, k := range s.KnownErrors {
		x.known[cleanPath(k.Filename)] = append(x.known[cleanPath(k.Filename)], i)
		fk := &flawless.KnownError{Rule: k.Pos.String(), Recipients: k.EmailRecipients, Header: k.EmailHeader}
		if k.MinAlertThreshold != nil {
			fk.Min = *k.MinAlertThreshold
		}
		if k.MaxAlertThreshold != nil {
			m := *k.MaxAlertThreshold
			fk.Max = &m
		}
		if k.AlertEveryNOccurrences != nil {
			fk.Every = *k.AlertEveryNOccurrences
		}
		x.knownRules = append(x.knownRules, fk)
	}
	for _, ie := range s.IgnoredExceptions {
		var re *regexp.Regexp
		if ie.MessageMatching != "" {
			var err error
			if re, err = regexp.Compile(ie.MessageMatching); err != nil {
				return fmt.Errorf("%s: message_matching: %w", ie.Pos, err)
			}
		}
		x.ignoreRe = append(x.ignoreRe, re)
	}
	for _, r := range s.Remaps {
		if strings.Contains(r.Remap, "@") {
			if _, dup := x.remapFull[strings.ToLower(r.Remap)]; !dup {
				x.remapFull[strings.ToLower(r.Remap)] = r
			}
		} else if _, dup := x.remapLocal[strings.ToLower(r.Remap)]; !dup {
			x.remapLocal[strings.ToLower(r.Remap)] = r
		}
	}
	s.idx = x
	return nil
}

// Prepare readies a Set built by hand for use, checking it as Parse does.
func (s *Set) Prepare() error {
	if err := s.validate(nil); err != nil {
		return err
	}
	return s.compile()
}

func (s *Set) index() *index {
	if s.idx == nil {
		// A Set built by hand and never prepared: compile it once. Patterns
		// that do not compile are caught by Prepare; here they match nothing.
		if err := s.compile(); err != nil {
			s.idx = &index{}
		}
	}
	return s.idx
}

// Ignore implements flawless.Policy: r is dropped when an ignored-exception
// entry matches its type (or the type of an error it wraps) and message.
func (s *Set) Ignore(r *report.Report) bool {
	x := s.index()
	for i, ie := range s.IgnoredExceptions {
		if ie.Type != "" && !hasType(r, ie.Type) {
			continue
		}
		if re := x.ignoreRe[i]; re != nil && !re.MatchString(r.Message) {
			continue
		}
		if ie.Type != "" || x.ignoreRe[i] != nil {
			return true
		}
	}
	return false
}

func hasType(r *report.Report, typ string) bool {
	if r.Type == typ {
		return true
	}
	for _, l := range r.Chain {
		if l.Type == typ {
			return true
		}
	}
	return false
}

// Match implements flawless.Policy. For each kind the first matching entry
// in file order wins.
func (s *Set) Match(path, function, text string) flawless.Match {
	x := s.index()
	var m flawless.Match
	text = report.NormalizeSpace(text)
	for _, i := range x.third[path] {
		if r := s.ThirdParty[i]; matchCode(r.FunctionName, r.CodeFragment, function, text) {
			m.ThirdParty = r.Pos.String()
			if m.ThirdParty == "" {
				m.ThirdParty = "third_party_whitelist"
			}
			break
		}
	}
	for _, i := range x.building[path] {
		if r := s.BuildingBlocks[i]; matchCode(r.FunctionName, r.CodeFragment, function, text) {
			m.BuildingBlock = r.Pos.String()
			if m.BuildingBlock == "" {
				m.BuildingBlock = "building_blocks"
			}
			break
		}
	}
	for _, i := range x.known[path] {
		if k := s.KnownErrors[i]; matchCode(k.FunctionName, k.CodeFragment, function, text) {
			m.Known = x.knownRules[i]
			break
		}
	}
	return m
}

// matchCode applies the function and code-fragment parts of a rule. text
// is already normalised.
func matchCode(ruleFunc, fragment, function, text string) bool {
	if ruleFunc != "" && !FunctionMatches(ruleFunc, function) {
		return false
	}
	if fragment == "" {
		return true
	}
	if text == "" {
		return false
	}
	fragment = report.NormalizeSpace(fragment)
	return strings.Contains(text, fragment) || strings.Contains(fragment, text)
}

// FunctionMatches reports whether a rule's function_name names the fully
// qualified function. The rule may give the full name
// ("github.com/acme/shop/cart.(*Cart).Add"), the name qualified by the
// package's name ("cart.(*Cart).Add"), the name within the package
// ("(*Cart).Add", "Cart.Add"), or the bare function or method name ("Add").
func FunctionMatches(rule, function string) bool {
	rule = strings.TrimSpace(rule)
	if rule == function {
		return true
	}
	short := report.ShortFunction(function)
	if rule == short {
		return true
	}
	pkg := report.Package(function)
	if rule == pkg[strings.LastIndexByte(pkg, '/')+1:]+"."+short {
		return true
	}
	// (*T).M written as T.M
	if strings.HasPrefix(short, "(*") {
		if i := strings.Index(short, ")."); i > 0 && rule == short[2:i]+"."+short[i+2:] {
			return true
		}
	}
	return rule == short[strings.LastIndexByte(short, '.')+1:]
}

// Route implements flawless.Policy.
func (s *Set) Route(author, blamed string, stack []string) flawless.Route {
	var rt flawless.Route
	if author != "" {
		rt.Developer, rt.Notes = s.developer(author, blamed)
	}
	seen := map[string]bool{}
	for _, w := range s.Watches {
		hit := false
		if w.WatchAllErrors {
			for _, p := range stack {
				hit = hit || underPath(p, w.Filepath)
			}
			hit = hit || (blamed != "" && underPath(blamed, w.Filepath))
		} else {
			hit = blamed != "" && cleanPath(w.Filepath) == blamed
		}
		if hit && !seen[strings.ToLower(w.Email)] {
			seen[strings.ToLower(w.Email)] = true
			rt.Watchers = append(rt.Watchers, w.Email)
			rt.Notes = append(rt.Notes, "Watcher "+w.Email+" of "+w.Filepath+" ("+w.Pos.String()+")")
		}
	}
	return rt
}

// developer normalises the author address blame found: remapping (full
// address, then the part before the @), the email domain, then
// disownership. It returns "" when the result is not a valid address.
func (s *Set) developer(author, blamed string) (string, []string) {
	var notes []string
	addr := strings.TrimSpace(author)
	if a, err := mail.ParseAddress(addr); err == nil {
		addr = a.Address
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "", nil
	}
	x := s.index()
	if r, ok := x.remapFull[strings.ToLower(addr)]; ok {
		addr = r.To
		notes = append(notes, "Remapped "+author+" to "+r.To+" ("+r.Pos.String()+")")
	} else if r, ok := x.remapLocal[strings.ToLower(local)]; ok {
		addr = r.To
		notes = append(notes, "Remapped "+author+" to "+r.To+" ("+r.Pos.String()+")")
	} else if d := s.Options.EmailDomain; d != "" && (!strings.Contains(domain, ".") || s.Options.IgnoreVCSDomain) {
		addr = local + "@" + d
	}
	// Disownership: entries on the file or a parent directory; the most
	// specific one wins for the same address; one level only.
	best := -1
	bestDepth := -1
	for i, d := range s.Disowns {
		if !underPath(blamed, d.Filepath) || !strings.EqualFold(d.Email, addr) {
			continue
		}
		depth := strings.Count(cleanPath(d.Filepath), "/")
		if best < 0 || depth > bestDepth {
			best, bestDepth = i, depth
		}
	}
	if best >= 0 {
		d := s.Disowns[best]
		notes = append(notes, addr+" disowned "+d.Filepath+"; designated "+d.DesignatedEmail+" ("+d.Pos.String()+")")
		addr = d.DesignatedEmail
	}
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return "", notes
	}
	return a.Address, notes
}

// underPath reports whether p is dir or lies under it, component-wise:
// "lib" covers "lib/x.go" but not "library/x.go".
func underPath(p, dir string) bool {
	dir = cleanPath(dir)
	if dir == "" || dir == "." {
		return p != ""
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func cleanPath(p string) string {
	p = strings.TrimSpace(p)
	p = strings.TrimPrefix(p, "./")
	return strings.TrimRight(p, "/")
}
