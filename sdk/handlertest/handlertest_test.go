package handlertest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// mem is a correct in-memory handler.
type mem struct {
	mu sync.Mutex
	m  map[string]sdk.Record
}

func (s *mem) Load(ctx context.Context, id string) (sdk.Record, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok || !time.Now().Before(r.Expires) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	return r, nil
}

func (s *mem) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Data = append([]byte(nil), r.Data...)
	s.m[id] = r
	return nil
}

func (s *mem) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func TestACorrectHandlerPasses(t *testing.T) {
	Run(t, &mem{m: map[string]sdk.Record{}})
}

// Broken handlers, each with one classic mistake; the kit must name it.
type ignoresExpiry struct{ mem }

func (s *ignoresExpiry) Load(ctx context.Context, id string) (sdk.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok {
		return r, sdk.ErrNotFound
	}
	return r, nil
}

type closeErrors struct{ mem }

func (s *closeErrors) Close(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return context.Canceled // any error for an absent id is wrong
	}
	delete(s.m, id)
	return nil
}

type notFoundAsNil struct{ mem }

func (s *notFoundAsNil) Load(ctx context.Context, id string) (sdk.Record, error) {
	r, err := s.mem.Load(ctx, id)
	if err == sdk.ErrNotFound {
		return sdk.Record{}, nil
	}
	return r, err
}

type truncates struct{ mem }

func (s *truncates) Save(ctx context.Context, id string, r sdk.Record) error {
	if len(r.Data) > 4<<20 {
		r.Data = r.Data[:4<<20]
	}
	return s.mem.Save(ctx, id, r)
}

type caseInsensitive struct{ mem }

func (s *caseInsensitive) Save(ctx context.Context, id string, r sdk.Record) error {
	return s.mem.Save(ctx, strings.ToLower(id), r)
}
func (s *caseInsensitive) Load(ctx context.Context, id string) (sdk.Record, error) {
	return s.mem.Load(ctx, strings.ToLower(id))
}

func TestBrokenHandlersAreCaught(t *testing.T) {
	tests := []struct {
		name      string
		h         sdk.Handler
		check     string
		wantWords string
	}{
		{"ignores expiry", &ignoresExpiry{mem{m: map[string]sdk.Record{}}}, "a record saved already expired is not found", "want sdk.ErrNotFound"},
		{"close of absent id errors", &closeErrors{mem{m: map[string]sdk.Record{}}}, "close removes the record and is idempotent", "want nil"},
		{"not found as empty record", &notFoundAsNil{mem{m: map[string]sdk.Record{}}}, "load of an unknown id reports sdk.ErrNotFound", "found a record"},
		{"truncates large values", &truncates{mem{m: map[string]sdk.Record{}}}, "the largest record the host allows round trips", "differ"},
		{"case-insensitive ids", &caseInsensitive{mem{m: map[string]sdk.Record{}}}, "ids with every allowed character work and stay distinct", "case-sensitive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var found bool
			for _, r := range CheckAll(context.Background(), tt.h, Options{ExpiryWait: 300 * time.Millisecond}) {
				if r.Name != tt.check {
					continue
				}
				found = true
				if r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantWords) {
					t.Fatalf("check %q: want a failure saying %q, got %v", tt.check, tt.wantWords, r.Err)
				}
			}
			if !found {
				t.Fatalf("no check named %q", tt.check)
			}
		})
	}
}

// vmem is a correct versioned, locking in-memory handler.
type vmem struct {
	mem
	seq   uint64
	vers  map[string]uint64
	locks map[string]lockEntry
}

type lockEntry struct {
	token string
	until time.Time
}

func newVmem() *vmem {
	return &vmem{mem: mem{m: map[string]sdk.Record{}}, vers: map[string]uint64{}, locks: map[string]lockEntry{}}
}

func (s *vmem) Load(ctx context.Context, id string) (sdk.Record, error) {
	r, err := s.mem.Load(ctx, id)
	s.mu.Lock()
	r.Version = s.vers[id]
	s.mu.Unlock()
	return r, err
}

func (s *vmem) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := s.mem.Save(ctx, id, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.seq++
	s.vers[id] = s.seq
	s.mu.Unlock()
	return nil
}

func (s *vmem) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[id]
	if ok && !time.Now().Before(cur.Expires) {
		ok = false
	}
	if !ok && expect != 0 {
		return 0, &sdk.ConflictError{}
	}
	if ok && s.vers[id] != expect {
		cur.Version = s.vers[id]
		return 0, &sdk.ConflictError{Found: true, Current: cur}
	}
	r.Data = append([]byte(nil), r.Data...)
	s.m[id] = r
	s.seq++
	s.vers[id] = s.seq
	return s.seq, nil
}

func (s *vmem) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[id]; ok && l.token != token && time.Now().Before(l.until) {
		return false, nil
	}
	s.locks[id] = lockEntry{token, time.Now().Add(ttl)}
	return true, nil
}

func (s *vmem) Unlock(ctx context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[id].token == token {
		delete(s.locks, id)
	}
	return nil
}

func TestAVersionedLockingHandlerPasses(t *testing.T) {
	Run(t, newVmem())
	for _, r := range CheckAll(context.Background(), newVmem(), Options{}) {
		if r.Skipped && strings.HasPrefix(r.Name, "index:") {
			continue // it has no index
		}
		if r.Skipped || r.Err != nil {
			t.Errorf("%s: skipped=%v err=%v", r.Name, r.Skipped, r.Err)
		}
	}
}

// lastWriterWins has SaveIf but does not check the version.
type lastWriterWins struct{ *vmem }

func (s lastWriterWins) SaveIf(ctx context.Context, id string, r sdk.Record, _ uint64) (uint64, error) {
	if err := s.vmem.Save(ctx, id, r); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vers[id], nil
}

// sharedLock lets any token take a held lock.
type sharedLock struct{ *vmem }

func (s sharedLock) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	return true, nil
}

func TestTheKitNamesBrokenProtocol2Handlers(t *testing.T) {
	cases := []struct {
		h    sdk.Handler
		want string
	}{
		{lastWriterWins{newVmem()}, "versions: a stale SaveIf is a conflict carrying the current record"},
		{lastWriterWins{newVmem()}, "versions: exactly one of concurrent SaveIfs of one version wins"},
		{lastWriterWins{newVmem()}, "versions: a SaveIf after Close fails (a destroyed session stays destroyed)"},
		{sharedLock{newVmem()}, "lock: one token at a time, extended by its holder, released only by it"},
		{sharedLock{newVmem()}, "lock: exactly one of concurrent Locks wins"},
	}
	for _, c := range cases {
		found := false
		for _, r := range CheckAll(context.Background(), c.h, Options{ExpiryWait: 400 * time.Millisecond}) {
			if r.Name == c.want {
				found = true
				if r.Err == nil {
					t.Errorf("%T passed %q", c.h, c.want)
				}
			}
		}
		if !found {
			t.Errorf("no check named %q", c.want)
		}
	}
}

func TestProtocol2ChecksAreSkippedForAPlainHandler(t *testing.T) {
	skipped := 0
	for _, r := range CheckAll(context.Background(), &mem{m: map[string]sdk.Record{}}, Options{}) {
		if r.Skipped {
			skipped++
		}
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if skipped != 12 {
		t.Errorf("%d checks skipped for a protocol-1 handler, want the 12 protocol-2 checks", skipped)
	}
}

// ivmem is a correct versioned handler with a principal index.
type ivmem struct {
	*vmem
	index map[string]map[string]bool // principal -> ids
}

func newIvmem() *ivmem { return &ivmem{vmem: newVmem(), index: map[string]map[string]bool{}} }

func (s *ivmem) indexID(id string, r sdk.Record) {
	if r.Principal == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index[r.Principal] == nil {
		s.index[r.Principal] = map[string]bool{}
	}
	s.index[r.Principal][id] = true
}

func (s *ivmem) Save(ctx context.Context, id string, r sdk.Record) error {
	s.indexID(id, r)
	return s.vmem.Save(ctx, id, r)
}

func (s *ivmem) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	s.indexID(id, r)
	return s.vmem.SaveIf(ctx, id, r, expect)
}

func (s *ivmem) CloseAll(ctx context.Context, p string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.index[p] {
		if r, ok := s.m[id]; ok && r.Principal == p {
			if time.Now().Before(r.Expires) {
				n++
			}
			delete(s.m, id)
		}
	}
	delete(s.index, p)
	return n, nil
}

func TestAnIndexingHandlerPasses(t *testing.T) {
	for _, r := range CheckAll(context.Background(), newIvmem(), Options{ExpiryWait: 300 * time.Millisecond}) {
		if r.Skipped || r.Err != nil {
			t.Errorf("%s: skipped=%v err=%v", r.Name, r.Skipped, r.Err)
		}
	}
}

// trustsTheIndex deletes whatever the index lists, without checking the
// record's current principal.
type trustsTheIndex struct{ *ivmem }

func (s trustsTheIndex) CloseAll(ctx context.Context, p string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.index[p] {
		if _, ok := s.m[id]; ok {
			delete(s.m, id)
			n++
		}
	}
	delete(s.index, p)
	return n, nil
}

// indexesSaveOnly forgets the principal of SaveIf.
type indexesSaveOnly struct{ *ivmem }

func (s indexesSaveOnly) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	return s.vmem.SaveIf(ctx, id, r, expect)
}

// emptiesInstead does not delete: it empties the records, which SaveIf
// with the old version then overwrites.
type emptiesInstead struct{ *ivmem }

func (s emptiesInstead) CloseAll(ctx context.Context, p string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.index[p] {
		if r, ok := s.m[id]; ok && r.Principal == p {
			s.m[id] = sdk.Record{Expires: r.Expires} // "logged out": an empty session
			n++
		}
	}
	return n, nil
}

func TestTheKitNamesBrokenIndexes(t *testing.T) {
	cases := []struct {
		h    sdk.Handler
		want string
	}{
		{trustsTheIndex{newIvmem()}, "index: a session saved since under another principal or none is not the old principal's"},
		{indexesSaveOnly{newIvmem()}, "index: CloseAll closes exactly the principal's live sessions"},
		{emptiesInstead{newIvmem()}, "index: a SaveIf after CloseAll fails (a destroyed session stays destroyed)"},
	}
	for _, c := range cases {
		found := false
		for _, r := range CheckAll(context.Background(), c.h, Options{Quick: true}) {
			if r.Name == c.want {
				found = true
				if r.Err == nil {
					t.Errorf("%T passed %q", c.h, c.want)
				}
			}
		}
		if !found {
			t.Errorf("no check named %q", c.want)
		}
	}
}
