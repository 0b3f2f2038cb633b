package flawless_test

import (
	"testing"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) flawless.Store { return flawless.NewMemStore() })
}

func TestZeroMemStoreWorks(t *testing.T) {
	storetest.Run(t, func(*testing.T) flawless.Store { return new(flawless.MemStore) })
}
