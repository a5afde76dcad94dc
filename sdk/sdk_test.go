package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
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
