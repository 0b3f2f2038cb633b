package flawless_test

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/flawless-go/flawless"

// heavy lists the third-party dependencies that must stay in one leaf
// package each, so that a service embedding the engine, or only using the
// client, does not link them.
var heavy = map[string]string{
	"github.com/go-git/":        mod + "/blame",
	"github.com/pelletier/":     mod + "/rules",
	"github.com/jordan-wright/": mod + "/notify",
	"go.etcd.io/bbolt":          mod + "/store/",
}

// TestImportRules checks the import graph of DESIGN.md with go list -deps.
func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	std := stdPackages(t)
	leaves := []string{"/blame", "/rules", "/notify", "/client", "/web", "/store/"}
	isLeaf := func(p string) bool {
		for _, l := range leaves {
			if strings.HasPrefix(p, mod+l) {
				return true
			}
		}
		return false
	}
	checked := 0
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		checked++
		for _, d := range deps {
			inModule := d == mod || strings.HasPrefix(d, mod+"/")
			switch {
			case pkg == mod+"/report" && !std[d]:
				t.Errorf("report imports %s: it may use only the standard library", d)
			case pkg == mod && !std[d] && d != mod+"/report":
				t.Errorf("the root package depends on %s: it may use only the standard library and report", d)
			case pkg == mod+"/client" && !std[d] && d != mod+"/report":
				t.Errorf("client depends on %s: a program that only reports must link nothing else", d)
			case isLeaf(pkg) && inModule && d != mod && d != mod+"/report" && !samePackageTree(pkg, d):
				t.Errorf("leaf %s imports leaf %s: leaves import only the root and report; cmd wires them", pkg, d)
			}
			for prefix, home := range heavy {
				if strings.HasPrefix(d, prefix) && !strings.HasPrefix(pkg, home) && !strings.HasPrefix(pkg, mod+"/cmd/") && !strings.HasPrefix(pkg, mod+"/e2e") {
					t.Errorf("%s depends on %s, which belongs in %s only", pkg, d, home)
				}
			}
		}
	}
	if checked < 4 {
		t.Errorf("go list listed %d packages; the check ran on too little", checked)
	}
}

func samePackageTree(pkg, dep string) bool {
	return strings.HasPrefix(dep, pkg+"/") || strings.HasPrefix(pkg, dep+"/")
}

func stdPackages(t *testing.T) map[string]bool {
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	std := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		std[p] = true
	}
	return std
}
