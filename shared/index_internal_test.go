package shared

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
)

// idxStore is a versioned Store with a principal index in memory, which
// records the principal of every write it receives.
type idxStore struct {
	memStore
	imu   sync.Mutex
	seq   uint64
	owner map[string]string // id -> principal of its latest write
	vers  map[string]uint64
	got   []string // principal of each write, in order
}

func newIdxStore() *idxStore {
	return &idxStore{memStore: memStore{recs: map[string]Record{}}, owner: map[string]string{}, vers: map[string]uint64{}}
}

func (s *idxStore) Save(ctx context.Context, id string, r Record) error {
	s.imu.Lock()
	defer s.imu.Unlock()
	s.got = append(s.got, r.Principal)
	s.owner[id] = r.Principal
	s.seq++
	s.vers[id] = s.seq
	return s.memStore.Save(ctx, id, r)
}

func (s *idxStore) SaveIf(ctx context.Context, id string, r Record, expect uint64) (uint64, error) {
	s.imu.Lock()
	defer s.imu.Unlock()
	if s.vers[id] != expect {
		return 0, &ConflictError{Found: s.vers[id] != 0, Current: Record{Data: []byte("cur"), Expires: time.UnixMilli(5000), Version: s.vers[id]}}
	}
	s.got = append(s.got, r.Principal)
	s.owner[id] = r.Principal
	s.seq++
	s.vers[id] = s.seq
	return s.seq, s.memStore.Save(ctx, id, r)
}

func (s *idxStore) CloseAll(ctx context.Context, principal string) (int, error) {
	if principal == "fail" {
		return 0, errors.New("index on fire")
	}
	s.imu.Lock()
	defer s.imu.Unlock()
	n := 0
	for id, p := range s.owner {
		if p == principal {
			delete(s.owner, id)
			delete(s.vers, id)
			s.memStore.Close(ctx, id)
			n++
		}
	}
	return n, nil
}

func (s *idxStore) principals() []string {
	s.imu.Lock()
	defer s.imu.Unlock()
	return append([]string(nil), s.got...)
}

// serveFastStore serves store on a real Unix socket and returns a client.
func serveFastStore(t *testing.T, store Store, epoll bool) *FastClient {
	t.Helper()
	secret := make([]byte, FastSecretSize)
	rand.Read(secret)
	addr := filepath.Join(t.TempDir(), FastSocketName)
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var hangups *hangupWatcher
	if epoll {
		hangups, _ = newHangupWatcher() // nil: a reader goroutine per call
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveFastConn(c, secret, store, hangups)
		}
	}()
	c := NewFastClient(addr, secret, FastOptions{Versions: true}, nil)
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// indexClients returns a client of store over each transport.
func indexClients(t *testing.T, store Store) map[string]Store {
	t.Helper()
	out := map[string]Store{}
	for _, m := range fastModes {
		out["fast, "+m.name] = serveFastStore(t, store, m.epoll)
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: &GRPCPlugin{Impl: store}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	out["grpc"] = raw.(Store)
	return out
}

func TestIndexCallsCarryThePrincipal(t *testing.T) {
	ctx := context.Background()
	p := strings.Repeat("ab", 32)
	for _, transport := range []string{"fast, hang-up watcher", "fast, reader goroutine per call", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			store := newIdxStore()
			c := indexClients(t, store)[transport]
			exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
			if err := c.Save(ctx, fastID("a"), Record{Data: []byte("tok-a"), Expires: exp, Principal: p}); err != nil {
				t.Fatal(err)
			}
			if err := c.Save(ctx, fastID("b"), Record{Data: []byte("tok-b"), Expires: exp}); err != nil {
				t.Fatal(err)
			}
			v := c.(Versioned)
			ver, err := v.SaveIf(ctx, fastID("c"), Record{Data: []byte("tok-c"), Expires: exp, Principal: p}, 0)
			if err != nil || ver == 0 {
				t.Fatalf("SaveIf with a principal: %d, %v", ver, err)
			}
			if _, err := v.SaveIf(ctx, fastID("c"), Record{Data: []byte("x"), Expires: exp, Principal: p}, ver+7); !errors.Is(err, ErrConflict) {
				t.Fatalf("a stale SaveIf with a principal: want a conflict, got %v", err)
			}
			if _, err := v.SaveIf(ctx, fastID("d"), Record{Data: []byte("tok-d"), Expires: exp}, 0); err != nil {
				t.Fatal(err)
			}
			if got, want := store.principals(), []string{p, "", p, ""}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("the store received principals %q, want %q", got, want)
			}
			for _, id := range []string{"a", "b", "c", "d"} {
				rec, err := c.Load(ctx, fastID(id))
				if err != nil || !bytes.Equal(rec.Data, []byte("tok-"+id)) {
					t.Fatalf("Load %s: %q, %v (the principal must not end up in the data)", id, rec.Data, err)
				}
			}
			ix := c.(Indexer)
			if n, err := ix.CloseAll(ctx, p); err != nil || n != 2 {
				t.Fatalf("CloseAll: %d, %v; want 2", n, err)
			}
			if n, err := ix.CloseAll(ctx, p); err != nil || n != 0 {
				t.Fatalf("CloseAll again: %d, %v; want 0", n, err)
			}
			var remote *RemoteError
			if _, err := ix.CloseAll(ctx, "fail"); !errors.As(err, &remote) || !strings.Contains(remote.Msg, "index on fire") {
				t.Fatalf("a failing CloseAll: want a RemoteError, got %v", err)
			}
			if _, err := c.Load(ctx, fastID("b")); err != nil {
				t.Fatalf("a record without a principal went with CloseAll: %v", err)
			}
		})
	}
}

func TestIndexCallsToAStoreWithoutIndexAreUnsupported(t *testing.T) {
	ctx := context.Background()
	for name, c := range indexClients(t, &memStore{recs: map[string]Record{}}) {
		if _, err := c.(Indexer).CloseAll(ctx, "abc"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: CloseAll of a store without an index: want ErrUnsupported, got %v", name, err)
		}
	}
}

func TestFastUnknownOpIsUnsupported(t *testing.T) {
	// What a handler built before an op existed answers: "unknown op", as
	// fastBadRequest. The caller gets ErrUnsupported, not a transport
	// failure (which would take the process for dead).
	c, _, _, _ := fastPair(t, true)
	_, _, err := c.call(context.Background(), 200, fastID("a"), nil, 0)
	if !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTransport) {
		t.Fatalf("an unknown op: want ErrUnsupported, got %v", err)
	}
	if _, err := c.Load(context.Background(), fastID("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the connection after an unknown op: %v", err)
	}
}

func TestFastPrincipalLengthIsChecked(t *testing.T) {
	// A header whose id and principal lengths add up to more than its body
	// is malformed.
	var h fastHeader
	b := make([]byte, fastHeaderLen)
	(&fastHeader{op: fastSaveP, bodyLen: 50, idLen: 43, pLen: 8}).put(b)
	if err := h.parse(b); err == nil {
		t.Fatal("a principal past the end of the body parsed")
	}
	(&fastHeader{op: fastSaveP, bodyLen: 51, idLen: 43, pLen: 8}).put(b)
	if err := h.parse(b); err != nil || h.pLen != 8 {
		t.Fatalf("a principal that fits: %v, pLen %d", err, h.pLen)
	}
	c, _, _, _ := fastPair(t, true)
	if err := c.Save(context.Background(), fastID("a"), Record{Principal: strings.Repeat("a", MaxPrincipal+1), Expires: time.Now().Add(time.Hour)}); !errors.Is(err, ErrInvalidPrincipal) {
		t.Fatalf("a principal over %d bytes: want ErrInvalidPrincipal, got %v", MaxPrincipal, err)
	}
}

func TestValidPrincipal(t *testing.T) {
	good := []string{"0", strings.Repeat("f", 64), strings.Repeat("0123456789abcdef", 8)}
	bad := []string{"", strings.Repeat("a", 129), "ABCDEF", "abc/", "ab.cd", "g", "a b", "a\n", "é"}
	for _, p := range good {
		if !ValidPrincipal(p) {
			t.Errorf("ValidPrincipal(%q) = false", p)
		}
	}
	for _, p := range bad {
		if ValidPrincipal(p) {
			t.Errorf("ValidPrincipal(%q) = true", p)
		}
	}
	err := PrincipalError("XYZ")
	if !errors.Is(err, ErrInvalidPrincipal) || !errors.Is(err, ErrInvalidID) || strings.Contains(err.Error(), "XYZ") {
		t.Errorf("PrincipalError: %v", err)
	}
}
