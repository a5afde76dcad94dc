package main

import (
	"context"
	"sync"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// MemoryStore keeps session records in a map. It implements sdk.Handler,
// and the three optional protocol-2 interfaces: sdk.VersionedHandler
// (SaveIf), sdk.Locker (Lock, Unlock) and sdk.Indexer (CloseAll).
//
// One mutex guards everything, which makes each SaveIf, Lock and CloseAll
// one atomic step. That is enough here because the whole store lives in this one
// process; a store that other processes share needs the atomic step in the
// store itself (see docs/writing-a-handler.md).
type MemoryStore struct {
	mu      sync.RWMutex
	records map[string]sdk.Record
	locks   map[string]memoryLock
	// index lists, per principal key, the ids saved with it. A record
	// keeps its own principal (Record.Principal); CloseAll trusts that,
	// not the index, which may still list ids saved since under another.
	index   map[string]map[string]struct{}
	version uint64 // the version given to the latest write
	now     func() time.Time
}

// memoryLock is the lock of one session: who holds it, and until when.
type memoryLock struct {
	token   string
	expires time.Time
}

var (
	_ sdk.VersionedHandler = (*MemoryStore)(nil)
	_ sdk.Locker           = (*MemoryStore)(nil)
	_ sdk.Indexer          = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		records: make(map[string]sdk.Record),
		locks:   make(map[string]memoryLock),
		index:   make(map[string]map[string]struct{}),
		now:     time.Now,
	}
}

// Load returns the record for id, with its version, or sdk.ErrNotFound when
// there is none or it has expired.
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

// Save stores a copy of r under id (the caller may reuse r.Data) with a new
// version.
func (m *MemoryStore) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Data = append([]byte(nil), r.Data...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(id, r)
	return nil
}

// SaveIf stores a copy of r under id only if the live record has version expect, or,
// when expect is 0, only if there is no live record. Otherwise it stores
// nothing and returns a *sdk.ConflictError saying what is stored now.
func (m *MemoryStore) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.Data = append([]byte(nil), r.Data...)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.records[id]
	live := ok && m.now().Before(cur.Expires) // an expired record is no record
	switch {
	case live && cur.Version != expect:
		return 0, &sdk.ConflictError{Found: true, Current: cur}
	case !live && expect != 0:
		return 0, &sdk.ConflictError{Found: false} // destroyed or expired
	}
	return m.put(id, r), nil
}

// put stores r under id with the next version, lists id in the index of
// r.Principal (if any), and returns that version. The caller holds m.mu.
// Every 64th record stored, it also forgets expired records and locks, and
// index entries of records that are gone or have another principal now, so
// memory does not grow with abandoned sessions.
//
// A counter is a fine version here: the store never restarts with its
// records, so an id never meets a version it had before. A persistent store
// must not use a counter that starts again with the process: it needs
// versions an id never had, such as random 64-bit numbers.
func (m *MemoryStore) put(id string, r sdk.Record) uint64 {
	if len(m.records)%64 == 0 {
		now := m.now()
		for k, v := range m.records {
			if !now.Before(v.Expires) {
				delete(m.records, k)
			}
		}
		for k, l := range m.locks {
			if !now.Before(l.expires) {
				delete(m.locks, k)
			}
		}
		for p, ids := range m.index {
			for id := range ids {
				if m.records[id].Principal != p { // gone, or another's now
					delete(ids, id)
				}
			}
			if len(ids) == 0 {
				delete(m.index, p)
			}
		}
	}
	m.version++
	r.Version = m.version
	m.records[id] = r
	if r.Principal != "" {
		if m.index[r.Principal] == nil {
			m.index[r.Principal] = make(map[string]struct{})
		}
		m.index[r.Principal][id] = struct{}{}
	}
	return r.Version
}

// CloseAll forgets every record whose principal is principal (the hex key
// the host sends for a user; sdk.Serve has checked its format) and the
// index of principal, and returns how many of them were live. Records
// saved since under another principal, or none, stay.
func (m *MemoryStore) CloseAll(ctx context.Context, principal string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id := range m.index[principal] {
		rec, ok := m.records[id]
		if !ok || rec.Principal != principal {
			continue // closed, or saved since under another principal
		}
		if now.Before(rec.Expires) {
			n++
		}
		delete(m.records, id)
	}
	delete(m.index, principal)
	return n, nil
}

// Close forgets id; an unknown id is not an error. The session's lock, if
// any, stays: it is not part of the record.
func (m *MemoryStore) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.records, id)
	m.mu.Unlock()
	return nil
}

// Lock takes the lock of id for token until ttl has passed, unless another
// token holds a lock on id that has not expired. The same token again
// extends it.
func (m *MemoryStore) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.locks[id]; ok && l.token != token && now.Before(l.expires) {
		return false, nil
	}
	m.locks[id] = memoryLock{token: token, expires: now.Add(ttl)}
	return true, nil
}

// Unlock releases the lock of id if token holds it, and otherwise does
// nothing.
func (m *MemoryStore) Unlock(ctx context.Context, id, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[id].token == token {
		delete(m.locks, id)
	}
	return nil
}
