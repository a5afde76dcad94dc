package shared_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/tina4go/sessions/shared"
)

type fake struct {
	rec    shared.Record
	err    error
	health error
}

func (f *fake) Info(context.Context) (shared.Info, error) {
	return shared.Info{Name: "Fake", Version: "1.2.3", Protocols: []int{1}, Capabilities: []string{"health"}, PID: 42}, nil
}
func (f *fake) Health(context.Context) error { return f.health }
func (f *fake) Load(_ context.Context, id string) (shared.Record, error) {
	if f.err != nil {
		return shared.Record{}, f.err
	}
	if f.rec.Data == nil {
		return shared.Record{}, shared.ErrNotFound
	}
	return f.rec, nil
}
func (f *fake) Save(_ context.Context, id string, r shared.Record) error { f.rec = r; return f.err }
func (f *fake) Close(context.Context, string) error                      { f.rec = shared.Record{}; return f.err }

// connect runs the adapters over a real in-memory gRPC connection.
func connect(t *testing.T, impl shared.Store) shared.Store {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		shared.PluginName: &shared.GRPCPlugin{Impl: impl},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(shared.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(shared.Store)
}

var id = strings.Repeat("a", shared.IDLength)

func TestAdaptersCarryEveryCall(t *testing.T) {
	f := &fake{}
	s := connect(t, f)
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil || info.Name != "Fake" || info.Version != "1.2.3" || info.PID != 42 || len(info.Protocols) != 1 || info.Capabilities[0] != "health" {
		t.Fatalf("Info: got %+v %v", info, err)
	}
	if _, err := s.Load(ctx, id); !errors.Is(err, shared.ErrNotFound) {
		t.Fatalf("Load of nothing: want ErrNotFound, got %v", err)
	}
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	data := []byte("opaque\x00token\n")
	if err := s.Save(ctx, id, shared.Record{Data: data, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Load(ctx, id)
	if err != nil || !bytes.Equal(rec.Data, data) || !rec.Expires.Equal(exp) {
		t.Fatalf("Load: want %q until %v, got %q until %v (%v)", data, exp, rec.Data, rec.Expires, err)
	}
	if err := s.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAdaptersMapErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"invalid id", shared.ErrInvalidID, func(e error) bool { return errors.Is(e, shared.ErrInvalidID) }},
		{"deadline", context.DeadlineExceeded, func(e error) bool { return errors.Is(e, context.DeadlineExceeded) }},
		{"store failure", errors.New("disk on fire"), func(e error) bool {
			var re *shared.RemoteError
			return errors.As(e, &re) && strings.Contains(re.Msg, "disk on fire")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := connect(t, &fake{err: tt.err})
			if _, err := s.Load(ctx, id); !tt.check(err) {
				t.Fatalf("Load error %v does not map back to %v", err, tt.err)
			}
		})
	}
	s := connect(t, &fake{health: errors.New("redis 127.0.0.1:1 unreachable")})
	if err := s.Health(ctx); err == nil || !strings.Contains(err.Error(), "redis 127.0.0.1:1 unreachable") {
		t.Fatalf("Health should carry the handler's message, got %v", err)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		strings.Repeat("a", 43):                       true,
		strings.Repeat("-", 21) + "_Z9aAz0":           false,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq": true,
		strings.Repeat("a", 42):                       false,
		strings.Repeat("a", 44):                       false,
		strings.Repeat("a", 42) + ".":                 false,
		strings.Repeat("a", 42) + "/":                 false,
		strings.Repeat("a", 42) + "=":                 false,
		"":                                            false,
	} {
		if got := shared.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
