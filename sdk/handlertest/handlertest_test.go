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
