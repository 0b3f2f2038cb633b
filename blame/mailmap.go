package blame

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// mailmap maps the names and addresses of commits to the ones people use,
// from a .mailmap file, as git blame does. Its forms are
//
//	Proper Name <commit@email>
//	<proper@email> <commit@email>
//	Proper Name <proper@email> <commit@email>
//	Proper Name <proper@email> Commit Name <commit@email>
//
// Addresses and names are matched without regard to case.
type mailmap struct {
	byEmail map[string]*mailmapEntry
}

type mailmapEntry struct {
	name, email string               // replacements for the address alone
	byName      map[string][2]string // commit name → replacement name, email
}

func parseMailmap(data string) *mailmap {
	m := &mailmap{byEmail: map[string]*mailmapEntry{}}
	for _, line := range strings.Split(data, "\n") {
		var names, emails []string
		rest := line
		for {
			lt := strings.IndexByte(rest, '<')
			hash := strings.IndexByte(rest, '#')
			if hash >= 0 && (lt < 0 || hash < lt) {
				rest = rest[:hash]
				lt = strings.IndexByte(rest, '<')
			}
			if lt < 0 {
				break
			}
			gt := strings.IndexByte(rest[lt:], '>')
			if gt < 0 {
				break
			}
			names = append(names, strings.TrimSpace(rest[:lt]))
			emails = append(emails, strings.TrimSpace(rest[lt+1:lt+gt]))
			rest = rest[lt+gt+1:]
		}
		switch len(emails) {
		case 1:
			if names[0] != "" {
				m.add(emails[0], "", names[0], "")
			}
		case 2:
			m.add(emails[1], names[1], names[0], emails[0])
		}
	}
	return m
}

func (m *mailmap) add(commitEmail, commitName, name, email string) {
	key := strings.ToLower(commitEmail)
	e := m.byEmail[key]
	if e == nil {
		e = &mailmapEntry{}
		m.byEmail[key] = e
	}
	if commitName == "" {
		if name != "" {
			e.name = name
		}
		if email != "" {
			e.email = email
		}
		return
	}
	if e.byName == nil {
		e.byName = map[string][2]string{}
	}
	e.byName[strings.ToLower(commitName)] = [2]string{name, email}
}

// lookup returns the name and address to use for a commit's author.
func (m *mailmap) lookup(name, email string) (string, string) {
	if m == nil {
		return name, email
	}
	e := m.byEmail[strings.ToLower(email)]
	if e == nil {
		return name, email
	}
	if r, ok := e.byName[strings.ToLower(name)]; ok {
		if r[0] != "" {
			name = r[0]
		}
		if r[1] != "" {
			email = r[1]
		}
		return name, email
	}
	if e.name != "" {
		name = e.name
	}
	if e.email != "" {
		email = e.email
	}
	return name, email
}

// loadMailmap reads .mailmap from the work tree, as git blame does, or from
// the head commit when there is no work tree or Update keeps the repository
// (and not its work tree) current.
func (g *Git) loadMailmap() *mailmap {
	if g.dir != "" && !g.managed {
		if data, err := os.ReadFile(filepath.Join(g.dir, ".mailmap")); err == nil {
			return parseMailmap(string(data))
		}
	}
	head, err := g.headLocked()
	if err != nil {
		return nil
	}
	c, err := g.commit(head)
	if err != nil {
		return nil
	}
	h, ok := g.lookup(c.tree, ".mailmap")
	if !ok {
		return nil
	}
	data, err := g.raw(plumbing.BlobObject, h)
	if err != nil {
		return nil
	}
	return parseMailmap(string(data))
}
