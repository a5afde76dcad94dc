package main

import (
	"context"
	"sync"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// MemoryStore keeps session records in a map. It implements sdk.Handler.
type MemoryStore struct {
	mu      sync.RWMutex
	records map[string]sdk.Record
	now     func() time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: make(map[string]sdk.Record), now: time.Now}
}

// Load returns the record for id, or sdk.ErrNotFound when there is none or
// it has expired.
func (m *MemoryStore) Load(ctx context.Context, id string) (sdk.Record, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	m.mu.RLock()
	rec, ok := m.records[id]
	m.mu.RUnlock()
	if !ok || !m.now().Before(rec.Expires) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	return rec, nil
}

// Save stores a copy of r under id (the caller may reuse r.Data), and
// forgets expired records while it holds the lock, so memory does not grow
// with abandoned sessions.
func (m *MemoryStore) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Data = append([]byte(nil), r.Data...)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.records)%64 == 0 {
		for k, v := range m.records {
			if !now.Before(v.Expires) {
				delete(m.records, k)
			}
		}
	}
	m.records[id] = r
	return nil
}

// Close forgets id; an unknown id is not an error.
func (m *MemoryStore) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.records, id)
	m.mu.Unlock()
	return nil
}
