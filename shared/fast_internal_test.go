package shared

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory; Load of an id starting with "block" waits
// for its ctx and reports how it ended on ended.
type memStore struct {
	mu    sync.Mutex
	recs  map[string]Record
	ended chan error
}

func (m *memStore) Info(context.Context) (Info, error) { return Info{Name: "mem"}, nil }
func (m *memStore) Health(context.Context) error       { return nil }
func (m *memStore) Load(ctx context.Context, id string) (Record, error) {
	switch {
	case strings.HasPrefix(id, "block"):
		<-ctx.Done()
		m.ended <- ctx.Err()
		return Record{}, ctx.Err()
	case strings.HasPrefix(id, "fail"):
		return Record{}, errors.New("disk on fire")
	case strings.HasPrefix(id, "bad"):
		return Record{}, ErrInvalidID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	return rec, nil
}
func (m *memStore) Save(_ context.Context, id string, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[id] = r
	return nil
}
func (m *memStore) Close(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, id)
	return nil
}

// fastPair serves a memStore on a real Unix socket, with the hang-up
// watcher or (epoll false) with a reader goroutine per call, and returns a
// client for it.
func fastPair(t *testing.T, epoll bool) (*FastClient, *memStore, string, []byte) {
	t.Helper()
	secret := make([]byte, FastSecretSize)
	rand.Read(secret)
	addr := filepath.Join(t.TempDir(), FastSocketName)
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	store := &memStore{recs: map[string]Record{}, ended: make(chan error, 16)}
	var hangups *hangupWatcher
	if epoll {
		if hangups, err = newHangupWatcher(); err != nil {
			t.Skipf("no epoll here: %v", err) // only the reader-goroutine mode exists here
		}
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
	c := NewFastClient(addr, secret, FastOptions{}, nil)
	t.Cleanup(func() { c.Shutdown() })
	return c, store, addr, secret
}

func fastID(prefix string) string { return (prefix + strings.Repeat("x", IDLength))[:IDLength] }

var fastModes = []struct {
	name  string
	epoll bool
}{{"hang-up watcher", true}, {"reader goroutine per call", false}}

func TestFastCallsAndErrors(t *testing.T) {
	for _, m := range fastModes {
		t.Run(m.name, func(t *testing.T) {
			c, _, _, _ := fastPair(t, m.epoll)
			ctx := context.Background()
			rec := Record{Data: []byte("token"), Expires: time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())}
			if err := c.Save(ctx, fastID("a"), rec); err != nil {
				t.Fatal(err)
			}
			got, err := c.Load(ctx, fastID("a"))
			if err != nil || !bytes.Equal(got.Data, rec.Data) || !got.Expires.Equal(rec.Expires) {
				t.Fatalf("Load: %+v %v, want %+v", got, err, rec)
			}
			if err := c.Close(ctx, fastID("a")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Load(ctx, fastID("a")); !errors.Is(err, ErrNotFound) {
				t.Errorf("after Close want ErrNotFound, got %v", err)
			}
			var remote *RemoteError
			if _, err := c.Load(ctx, fastID("fail")); !errors.As(err, &remote) || remote.Msg != "disk on fire" {
				t.Errorf("handler failure: want RemoteError(disk on fire), got %v", err)
			}
			if _, err := c.Load(ctx, fastID("bad")); !errors.Is(err, ErrInvalidID) {
				t.Errorf("want ErrInvalidID, got %v", err)
			}
			if err := c.Save(ctx, fastID("a"), Record{Data: make([]byte, MaxRecordSize+1)}); !errors.Is(err, ErrTooLarge) {
				t.Errorf("want ErrTooLarge, got %v", err)
			}
			big := Record{Data: bytes.Repeat([]byte{7}, MaxRecordSize), Expires: rec.Expires}
			if err := c.Save(ctx, fastID("big"), big); err != nil {
				t.Fatalf("Save of MaxRecordSize: %v", err)
			}
			if got, err := c.Load(ctx, fastID("big")); err != nil || !bytes.Equal(got.Data, big.Data) {
				t.Fatalf("Load of MaxRecordSize: %d bytes, %v", len(got.Data), err)
			}
		})
	}
}

func TestFastCancelAndDeadlineReachTheHandler(t *testing.T) {
	for _, m := range fastModes {
		t.Run(m.name, func(t *testing.T) {
			c, store, _, _ := fastPair(t, m.epoll)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { _, err := c.Load(ctx, fastID("block1")); errc <- err }()
			time.Sleep(100 * time.Millisecond)
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled call: want context.Canceled, got %v", err)
			}
			if err := <-store.ended; !errors.Is(err, context.Canceled) {
				t.Errorf("the handler's ctx ended with %v, want context.Canceled", err)
			}
			dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer dcancel()
			if _, err := c.Load(dctx, fastID("block2")); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("call past its deadline: want DeadlineExceeded, got %v", err)
			}
			if err := <-store.ended; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("the handler's ctx ended with %v, want its deadline", err)
			}
			// The client still works after abandoning connections.
			if _, err := c.Load(context.Background(), fastID("z")); !errors.Is(err, ErrNotFound) {
				t.Errorf("after the cancelled calls: %v", err)
			}
		})
	}
}

// rawFrame writes a frame header with the given fields and body.
func rawFrame(op byte, bodyLen uint32, body []byte) []byte {
	var h fastHeader
	h.op, h.bodyLen, h.tag = op, bodyLen, 1
	b := make([]byte, fastHeaderLen)
	h.put(b)
	return append(b, body...)
}

// expectClosed checks that the server closes c without answering.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("%s: want the connection closed with no answer, got %d bytes, %v", what, n, err)
	}
}

func TestFastServerTurnsAwayStrangers(t *testing.T) {
	_, _, addr, secret := fastPair(t, true)
	dial := func() net.Conn {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wrong := bytes.Clone(secret)
	wrong[0] ^= 1
	c := dial()
	c.Write(rawFrame(fastHello, FastSecretSize, wrong))
	expectClosed(t, c, "a wrong secret")

	c = dial()
	c.Write(rawFrame(fastLoad, IDLength, []byte(fastID("a"))))
	expectClosed(t, c, "a request before the hello")

	c = dial()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n          "))
	expectClosed(t, c, "junk")

	// After a good hello, a frame that announces more than the limit is
	// refused at once, without waiting for (or allocating) its body.
	c = dial()
	c.Write(rawFrame(fastHello, FastSecretSize, secret))
	hb := make([]byte, fastHeaderLen)
	if _, err := io.ReadFull(c, hb); err != nil {
		t.Fatalf("hello: %v", err)
	}
	huge := rawFrame(fastSave, 0, nil)
	binary.LittleEndian.PutUint32(huge[0:], fastMaxBody+1)
	c.Write(huge)
	expectClosed(t, c, "an oversized frame")
}

func TestFastClientRefusesAnOversizedAnswer(t *testing.T) {
	// A server that answers the hello, then announces a body over the limit.
	addr := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, fastHeaderLen+FastSecretSize)
		io.ReadFull(c, b)
		ok := make([]byte, fastHeaderLen)
		(&fastHeader{tag: 1, op: fastHello}).put(ok)
		c.Write(ok)
		io.ReadFull(c, make([]byte, fastHeaderLen+IDLength))
		bad := make([]byte, fastHeaderLen)
		(&fastHeader{tag: 2, op: fastLoad, bodyLen: fastMaxBody + 1}).put(bad)
		c.Write(bad)
		time.Sleep(10 * time.Second) // never sends the body
	}()
	secret := make([]byte, FastSecretSize)
	c := NewFastClient(addr, secret, FastOptions{}, nil)
	defer c.Shutdown()
	done := make(chan error, 1)
	go func() { _, err := c.Load(context.Background(), fastID("a")); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("want ErrTooLarge, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an oversized answer hung the call")
	}
}

func TestValidID(t *testing.T) {
	good := []string{strings.Repeat("a", 43), strings.Repeat("Z", 42) + "-", strings.Repeat("_", 43), "0123456789" + strings.Repeat("x", 33)}
	bad := []string{"", strings.Repeat("a", 42), strings.Repeat("a", 44), strings.Repeat("a", 42) + ".", strings.Repeat("a", 42) + "/",
		strings.Repeat("a", 42) + "\x00", strings.Repeat("a", 41) + "é", strings.Repeat("a", 42) + "=", strings.Repeat("a", 42) + "+"}
	for _, id := range good {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false, want true", id)
		}
	}
	for _, id := range bad {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true, want false", id)
		}
	}
}
