package bolt_test

import (
	"path/filepath"
	"testing"

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
