package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tina4go/sessions/shared"
)

type spy struct{ calls int }

func (s *spy) Load(context.Context, string) (Record, error) { s.calls++; return Record{}, ErrNotFound }
func (s *spy) Save(context.Context, string, Record) error   { s.calls++; return nil }
func (s *spy) Close(context.Context, string) error          { s.calls++; return nil }

func TestStoreRefusesInvalidIDsBeforeTheHandler(t *testing.T) {
	h := &spy{}
	st := NewStore("Spy", "1", h)
	ctx := context.Background()
	for _, id := range []string{"../../etc/passwd", "", strings.Repeat("a", 42) + ".", "a/b"} {
		if _, err := st.Load(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Load(%q): want ErrInvalidID, got %v", id, err)
		}
		if err := st.Save(ctx, id, Record{}); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Save(%q): want ErrInvalidID, got %v", id, err)
		}
		if err := st.Close(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Close(%q): want ErrInvalidID, got %v", id, err)
		}
	}
	if h.calls != 0 {
		t.Fatalf("invalid ids reached the handler %d times", h.calls)
	}
	if _, err := st.Load(ctx, strings.Repeat("a", 43)); !errors.Is(err, ErrNotFound) || h.calls != 1 {
		t.Fatalf("a valid id must reach the handler")
	}
}

func TestInfoReportsHealthCapabilityOnlyWhenImplemented(t *testing.T) {
	info, _ := NewStore("Spy", "1", &spy{}).Info(context.Background())
	if len(info.Capabilities) != 0 || info.Name != "Spy" || info.Version != "1" || info.PID == 0 {
		t.Fatalf("Info of a plain handler: %+v", info)
	}
	info, _ = NewStore("H", "1", &healthy{}).Info(context.Background())
	if len(info.Capabilities) != 1 || info.Capabilities[0] != "health" {
		t.Fatalf("Info of a HealthChecker should report the health capability: %+v", info)
	}
}

type healthy struct{ spy }

func (healthy) Health(context.Context) error { return errors.New("db down") }

func TestServeByHandExplainsItself(t *testing.T) {
	t.Setenv("TINA4_SESSION_PLUGIN", "")
	err := Serve(Config{Name: "MyHandler", Handler: &spy{}})
	if err == nil || !strings.Contains(err.Error(), "TINA4_SESSION_HANDLER=MyHandler") {
		t.Fatalf("Serve outside a host should explain how to use the binary, got %v", err)
	}
}

func TestLoggerWritesHclogShapedJSON(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf).Warn("disk nearly full", "free_mb", 12)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("log line is not JSON: %q", buf.String())
	}
	if m["@level"] != "warn" || m["@message"] != "disk nearly full" || m["@timestamp"] == nil || m["free_mb"] != 12.0 {
		t.Fatalf("want @level=warn @message @timestamp free_mb, got %v", m)
	}
}

// indexSpy is an Indexer that records what reaches it.
type indexSpy struct {
	spy
	principals []string
	closeAll   []string
}

func (s *indexSpy) Save(_ context.Context, _ string, r Record) error {
	s.principals = append(s.principals, r.Principal)
	return nil
}

func (s *indexSpy) CloseAll(_ context.Context, p string) (int, error) {
	s.closeAll = append(s.closeAll, p)
	return 3, nil
}

func TestStoreChecksPrincipalsAndOffersTheIndex(t *testing.T) {
	ctx := context.Background()
	id := strings.Repeat("a", 43)
	p := strings.Repeat("0f", 32)
	ix := &indexSpy{}
	st := NewStore("Ix", "1", ix)
	info, _ := st.Info(ctx)
	if !info.HasCapability(shared.CapabilityIndex) {
		t.Fatalf("an Indexer should report capability index: %+v", info.Capabilities)
	}
	for _, bad := range []string{"ABCD", strings.Repeat("a", 129), "../x", "a b"} {
		if err := st.Save(ctx, id, Record{Principal: bad}); !errors.Is(err, ErrInvalidPrincipal) || !errors.Is(err, ErrInvalidID) {
			t.Errorf("Save with principal %q: want ErrInvalidPrincipal, got %v", bad, err)
		}
		if _, err := st.(shared.Indexer).CloseAll(ctx, bad); !errors.Is(err, ErrInvalidPrincipal) {
			t.Errorf("CloseAll(%q): want ErrInvalidPrincipal, got %v", bad, err)
		}
	}
	if _, err := st.(shared.Indexer).CloseAll(ctx, ""); !errors.Is(err, ErrInvalidPrincipal) {
		t.Errorf("CloseAll of no principal: want ErrInvalidPrincipal, got %v", err)
	}
	if len(ix.principals) != 0 || len(ix.closeAll) != 0 {
		t.Fatalf("invalid principals reached the handler: %q %q", ix.principals, ix.closeAll)
	}
	st.Save(ctx, id, Record{Principal: p})
	st.Save(ctx, id, Record{})
	if n, err := st.(shared.Indexer).CloseAll(ctx, p); n != 3 || err != nil {
		t.Fatalf("CloseAll: %d, %v", n, err)
	}
	if strings.Join(ix.principals, ",") != p+"," || len(ix.closeAll) != 1 || ix.closeAll[0] != p {
		t.Fatalf("the handler got principals %q and CloseAll %q", ix.principals, ix.closeAll)
	}

	// A handler without the index never sees a principal, and CloseAll is
	// unsupported.
	plain := &principalBlind{}
	st = NewStore("Plain", "1", plain)
	if info, _ := st.Info(ctx); info.HasCapability(shared.CapabilityIndex) {
		t.Fatalf("a plain handler reports capability index")
	}
	if err := st.Save(ctx, id, Record{Principal: p}); err != nil || plain.got != "" || plain.calls != 1 {
		t.Fatalf("Save with a principal to a plain handler: %v; it saw principal %q", err, plain.got)
	}
	if _, err := st.(shared.Indexer).CloseAll(ctx, p); !errors.Is(err, shared.ErrUnsupported) {
		t.Fatalf("CloseAll of a plain handler: want ErrUnsupported, got %v", err)
	}
}

type principalBlind struct {
	spy
	got string
}

func (s *principalBlind) Save(_ context.Context, _ string, r Record) error {
	s.calls++
	s.got = r.Principal
	return nil
}
