package shared

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// fastHelloTimeout bounds how long a new connection may take to present the
// secret before the server drops it.
const fastHelloTimeout = 10 * time.Second

// ServeFast serves impl's Load, Save and Close on the fast-transport
// connections l accepts, until l is closed (then it returns nil). A
// connection whose first frame is not a hello carrying secret is closed
// without an answer. Every request runs in its own goroutine with a context
// that carries the host's deadline and is cancelled when the host closes the
// connection.
func ServeFast(l net.Listener, secret []byte, impl Store) error {
	if len(secret) != FastSecretSize {
		return fmt.Errorf("fast transport: the secret must be %d bytes, not %d", FastSecretSize, len(secret))
	}
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			// Out of file descriptors and the like: wait and try again,
			// as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go serveFastConn(c, secret, impl)
	}
}

// fastServerConn is one accepted connection; replies from concurrent
// requests are written under wmu.
type fastServerConn struct {
	c    net.Conn
	impl Store
	wmu  sync.Mutex
}

func serveFastConn(c net.Conn, secret []byte, impl Store) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 32<<10)
	var hb [fastHeaderLen]byte
	var h fastHeader
	c.SetReadDeadline(time.Now().Add(fastHelloTimeout))
	if err := readHeader(r, hb[:], &h); err != nil || h.op != fastHello || h.bodyLen != FastSecretSize {
		return
	}
	got := make([]byte, FastSecretSize)
	if _, err := io.ReadFull(r, got); err != nil || subtle.ConstantTimeCompare(got, secret) != 1 {
		return
	}
	c.SetReadDeadline(time.Time{})
	sc := &fastServerConn{c: c, impl: impl}
	sc.reply(fastHeader{tag: h.tag, op: fastHello}, nil)

	// Calls in flight on this connection are cancelled when it closes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		if err := readHeader(r, hb[:], &h); err != nil {
			return
		}
		// The body is the handler's to keep (a memory store may hold on
		// to Save's data), so it is never reused.
		body := make([]byte, h.bodyLen)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		go sc.handle(ctx, h, body)
	}
}

func (sc *fastServerConn) handle(ctx context.Context, h fastHeader, body []byte) {
	if h.deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, h.deadline))
		defer cancel()
	}
	id := string(body[:h.idLen])
	resp := fastHeader{tag: h.tag, op: h.op}
	var data []byte
	var err error
	switch h.op {
	case fastLoad:
		var rec Record
		if rec, err = sc.impl.Load(ctx, id); err == nil {
			data, resp.expires = rec.Data, rec.Expires.UnixMilli()
			if len(data) > MaxRecordSize {
				err = fmt.Errorf("%w: the handler loaded %d bytes", ErrTooLarge, len(data))
			}
		}
	case fastSave:
		err = sc.impl.Save(ctx, id, Record{Data: body[h.idLen:], Expires: time.UnixMilli(h.expires)})
	case fastClose:
		err = sc.impl.Close(ctx, id)
	default:
		resp.status, data = fastBadRequest, []byte(fmt.Sprintf("unknown op %d", h.op))
	}
	if err != nil {
		var msg string
		resp.status, msg = fastStatus(err)
		data = []byte(msg)
	}
	sc.reply(resp, data)
}

// reply writes one response frame; a failed write closes the connection.
func (sc *fastServerConn) reply(h fastHeader, data []byte) {
	h.bodyLen = uint32(len(data))
	var hb [fastHeaderLen]byte
	h.put(hb[:])
	bufs := net.Buffers{hb[:], data}
	sc.wmu.Lock()
	_, err := bufs.WriteTo(sc.c)
	sc.wmu.Unlock()
	if err != nil {
		sc.c.Close()
	}
}
