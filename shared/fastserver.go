package shared

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
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

// ServeFast serves impl's calls (all but Info and Health) on the fast-transport
// connections l accepts, until l is closed (then it returns nil). A
// connection whose first frame is not a hello carrying secret is closed
// without an answer. Every call's context carries the host's deadline and
// is cancelled when the host closes the connection.
func ServeFast(l net.Listener, secret []byte, impl Store) error {
	if len(secret) != FastSecretSize {
		return fmt.Errorf("fast transport: the secret must be %d bytes, not %d", FastSecretSize, len(secret))
	}
	hangups, _ := newHangupWatcher() // nil where there is no epoll
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
		go serveFastConn(c, secret, impl, hangups)
	}
}

// fastServerConn is one accepted connection.
type fastServerConn struct {
	c    net.Conn
	r    *bufio.Reader
	impl Store
	wmu  sync.Mutex // replies; only contended when a host sends several calls at once
	wbuf []byte     // the reply being written, reused (under wmu)
}

func serveFastConn(c net.Conn, secret []byte, impl Store, hangups *hangupWatcher) {
	sc := &fastServerConn{c: c, r: bufio.NewReaderSize(c, 32<<10), impl: impl}
	c.SetReadDeadline(time.Now().Add(fastHelloTimeout))
	// The hello is checked from its header before its body is read, so a
	// stranger cannot make the server allocate anything.
	var hb [fastHeaderLen]byte
	var h fastHeader
	got := make([]byte, FastSecretSize)
	if err := readHeader(sc.r, hb[:], &h); err != nil || h.op != fastHello || h.bodyLen != FastSecretSize {
		c.Close()
		return
	}
	if _, err := io.ReadFull(sc.r, got); err != nil || subtle.ConstantTimeCompare(got, secret) != 1 {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	sc.reply(fastHeader{tag: h.tag, op: fastHello}, nil)

	// Calls in flight on this connection are cancelled when it closes.
	ctx, cancel := context.WithCancel(context.Background())
	inline := false
	if hangups != nil {
		if unwatch, err := hangups.watch(c, cancel); err == nil {
			defer unwatch()
			inline = true
		}
	}
	sc.loop(ctx, cancel, inline)
}

// loop reads requests and handles each on the goroutine that read it: a
// hand-off to another goroutine costs about half a call's latency
// (measured). With the hang-up watcher (inline), the next request is read
// once this one is answered; without it, a new goroutine takes over reading
// first, so that a host closing the connection still cancels the call.
func (sc *fastServerConn) loop(ctx context.Context, cancel context.CancelFunc, inline bool) {
	for {
		h, body, err := sc.next()
		if err != nil {
			cancel()
			sc.c.Close()
			return
		}
		if !inline {
			go sc.loop(ctx, cancel, false)
			sc.handle(ctx, h, body)
			return
		}
		sc.handle(ctx, h, body)
	}
}

// next reads one frame. Its body is the handler's to keep (a memory store
// may hold on to Save's data), so it is never reused.
func (sc *fastServerConn) next() (fastHeader, []byte, error) {
	var hb [fastHeaderLen]byte
	var h fastHeader
	if err := readHeader(sc.r, hb[:], &h); err != nil {
		return h, nil, err
	}
	body := make([]byte, h.bodyLen)
	if _, err := io.ReadFull(sc.r, body); err != nil {
		return h, nil, err
	}
	return h, body, nil
}

func (sc *fastServerConn) handle(ctx context.Context, h fastHeader, body []byte) {
	if h.deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, h.deadline))
		defer cancel()
	}
	id := string(body[:h.idLen])
	rest := body[h.idLen:]
	var principal string
	if h.op == fastSaveP || h.op == fastSaveIfP {
		// parse made sure the principal fits in the body.
		principal, rest = string(rest[:h.pLen]), rest[h.pLen:]
	}
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
	case fastSave, fastSaveP:
		if h.op == fastSaveP && principal == "" {
			resp.status, data = fastBadRequest, []byte("saveP without a principal")
			break
		}
		err = sc.impl.Save(ctx, id, Record{Data: rest, Expires: time.UnixMilli(h.expires), Principal: principal})
	case fastClose:
		err = sc.impl.Close(ctx, id)
	case fastLoadV:
		var rec Record
		if rec, err = sc.impl.Load(ctx, id); err == nil {
			resp.expires = rec.Expires.UnixMilli()
			if len(rec.Data) > MaxRecordSize {
				err = fmt.Errorf("%w: the handler loaded %d bytes", ErrTooLarge, len(rec.Data))
			} else {
				data = binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(rec.Data)), rec.Version)
				data = append(data, rec.Data...)
			}
		}
	case fastSaveIf, fastSaveIfP:
		v, ok := sc.impl.(Versioned)
		switch {
		case !ok:
			err = fmt.Errorf("%w: SaveIf (capability %q)", ErrUnsupported, CapabilityVersions)
		case len(rest) < 8:
			resp.status, data = fastBadRequest, []byte("saveIf without a version")
		case h.op == fastSaveIfP && principal == "":
			resp.status, data = fastBadRequest, []byte("saveIfP without a principal")
		default:
			var ver uint64
			ver, err = v.SaveIf(ctx, id, Record{Data: rest[8:], Expires: time.UnixMilli(h.expires), Principal: principal}, binary.LittleEndian.Uint64(rest))
			var ce *ConflictError
			if errors.As(err, &ce) {
				err, resp.status = nil, fastConflict
				data = make([]byte, 9, 9+len(ce.Current.Data))
				if ce.Found {
					data[0] = 1
					binary.LittleEndian.PutUint64(data[1:], ce.Current.Version)
					data = append(data, ce.Current.Data...)
					resp.expires = ce.Current.Expires.UnixMilli()
				}
			} else if err == nil {
				data = binary.LittleEndian.AppendUint64(nil, ver)
			}
		}
	case fastLock, fastUnlock:
		l, ok := sc.impl.(Locker)
		token := string(body[h.idLen:])
		switch {
		case !ok:
			err = fmt.Errorf("%w: Lock and Unlock (capability %q)", ErrUnsupported, CapabilityLock)
		case h.op == fastLock:
			var got bool
			if got, err = l.Lock(ctx, id, token, time.Duration(h.expires)*time.Millisecond); err == nil {
				data = []byte{0}
				if got {
					data[0] = 1
				}
			}
		default:
			err = l.Unlock(ctx, id, token)
		}
	case fastCloseAll:
		ix, ok := sc.impl.(Indexer)
		if !ok {
			err = fmt.Errorf("%w: CloseAll (capability %q)", ErrUnsupported, CapabilityIndex)
			break
		}
		var n int
		if n, err = ix.CloseAll(ctx, id); err == nil {
			data = binary.LittleEndian.AppendUint64(nil, uint64(max(n, 0)))
		}
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

// reply writes one response frame, in one write: small ones from a buffer
// the connection reuses, larger ones as a header and the data (writev).
func (sc *fastServerConn) reply(h fastHeader, data []byte) {
	h.bodyLen = uint32(len(data))
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	var err error
	if n := fastHeaderLen + len(data); len(data) <= fastInline {
		if cap(sc.wbuf) < n {
			sc.wbuf = make([]byte, n)
		}
		b := sc.wbuf[:n]
		h.put(b)
		copy(b[fastHeaderLen:], data)
		_, err = sc.c.Write(b)
	} else {
		hb := make([]byte, fastHeaderLen)
		h.put(hb)
		bufs := net.Buffers{hb, data}
		_, err = bufs.WriteTo(sc.c)
	}
	if err != nil {
		sc.c.Close()
	}
}
