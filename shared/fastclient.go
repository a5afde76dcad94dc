package shared

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// fastMaxIdle caps the idle connections a FastClient keeps.
	fastMaxIdle = 128
	// fastInline is the largest Save whose data is copied into the request
	// buffer (one write); larger data goes out in a second write.
	fastInline = 16 << 10
	// fastDialTimeout bounds dial plus hello when the call has no deadline.
	fastDialTimeout = 5 * time.Second
)

// FastClient is the host-side Store over the fast transport: Load, Save and
// Close go over the handler's private Unix socket, one call at a time per
// connection, from a pool of connections; Info and Health, which are not on
// the hot path, go to Fallback (the gRPC client of the same process).
//
// Errors mean what they mean over gRPC: ErrNotFound, ErrInvalidID,
// ErrTooLarge, context.DeadlineExceeded, context.Canceled, *RemoteError for
// a handler failure, and ErrTransport when the socket could not be reached
// or broke (the process may be gone). A call whose context ends is
// abandoned at once: its connection is closed, which cancels the call in the
// handler.
type FastClient struct {
	addr      string
	secret    []byte
	timeout   time.Duration
	maxRecord int
	versions  bool
	fallback  Store

	mu     sync.Mutex
	idle   []*fastConn
	closed bool
}

// FastOptions tune a FastClient; the zero value is fine.
type FastOptions struct {
	// Timeout, above zero, bounds every Load, Save and Close besides the
	// deadline of its ctx (and costs no context of its own).
	Timeout time.Duration
	// MaxRecordSize is the largest record the client sends or accepts
	// (default and upper bound: MaxRecordSize). A larger answer is refused
	// from its header, before any of it is read into memory.
	MaxRecordSize int
	// Versions makes Load ask for record versions: set it for a handler
	// with capability "versions" (an older handler does not know the op).
	Versions bool
}

// NewFastClient returns a client for the fast-transport socket addr,
// presenting secret, with fallback serving Info and Health. It does not
// connect; Ping does.
func NewFastClient(addr string, secret []byte, o FastOptions, fallback Store) *FastClient {
	if o.MaxRecordSize <= 0 || o.MaxRecordSize > MaxRecordSize {
		o.MaxRecordSize = MaxRecordSize
	}
	return &FastClient{addr: addr, secret: secret, timeout: o.Timeout, maxRecord: o.MaxRecordSize, versions: o.Versions, fallback: fallback}
}

// fastConn is one pooled connection; it carries one call at a time.
type fastConn struct {
	c         *net.UnixConn
	r         *bufio.Reader
	buf       []byte // the request being written, reused
	hdr       [fastHeaderLen]byte
	tag       uint32
	interrupt func() // forces the pending read or write to fail now
}

// Ping opens a connection and presents the secret, so a host can tell at
// launch whether the fast transport works before it relies on it.
func (c *FastClient) Ping(ctx context.Context) error {
	deadline, _ := ctx.Deadline()
	fc, err := c.get(ctx, deadline)
	if err != nil {
		return err
	}
	c.put(fc)
	return nil
}

// Shutdown closes the idle connections; calls made after it fail with
// ErrTransport. Calls in flight finish on their own connections.
func (c *FastClient) Shutdown() error {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, fc := range idle {
		fc.c.Close()
	}
	return nil
}

// Info asks the handler what it is (over gRPC). The fast-transport secret
// is not part of the answer.
func (c *FastClient) Info(ctx context.Context) (Info, error) {
	info, err := c.fallback.Info(ctx)
	info.FastSecret = nil
	return info, err
}

// Health asks the handler whether its store is usable (over gRPC).
func (c *FastClient) Health(ctx context.Context) error { return c.fallback.Health(ctx) }

// Load fetches the record for id; ErrNotFound when there is none.
func (c *FastClient) Load(ctx context.Context, id string) (Record, error) {
	if c.versions {
		return c.loadVersioned(ctx, id)
	}
	resp, body, err := c.call(ctx, fastLoad, id, nil, 0)
	if err != nil {
		return Record{}, err
	}
	return Record{Data: body, Expires: time.UnixMilli(resp.expires)}, nil
}

// Save stores rec under id. A record with a Principal goes as saveP, which
// only a handler with capability "index" knows.
func (c *FastClient) Save(ctx context.Context, id string, rec Record) error {
	if len(rec.Data) > c.maxRecord {
		return fmt.Errorf("%w: a record of %d bytes, over the limit of %d", ErrTooLarge, len(rec.Data), c.maxRecord)
	}
	if rec.Principal != "" {
		if len(rec.Principal) > MaxPrincipal {
			return PrincipalError(rec.Principal)
		}
		data := make([]byte, 0, len(rec.Principal)+len(rec.Data))
		data = append(append(data, rec.Principal...), rec.Data...)
		_, _, err := c.callP(ctx, fastSaveP, id, byte(len(rec.Principal)), data, rec.Expires.UnixMilli())
		return err
	}
	_, _, err := c.call(ctx, fastSave, id, rec.Data, rec.Expires.UnixMilli())
	return err
}

// loadVersioned fetches the record for id with its version (protocol 2).
func (c *FastClient) loadVersioned(ctx context.Context, id string) (Record, error) {
	resp, body, err := c.call(ctx, fastLoadV, id, nil, 0)
	if err != nil {
		return Record{}, err
	}
	if len(body) < 8 {
		return Record{}, fmt.Errorf("%w: a versioned load answered without a version", ErrTransport)
	}
	return Record{Data: body[8:], Expires: time.UnixMilli(resp.expires), Version: binary.LittleEndian.Uint64(body)}, nil
}

// SaveIf stores rec under id if the stored version is expect (protocol 2).
func (c *FastClient) SaveIf(ctx context.Context, id string, rec Record, expect uint64) (uint64, error) {
	if len(rec.Data) > c.maxRecord {
		return 0, fmt.Errorf("%w: a record of %d bytes, over the limit of %d", ErrTooLarge, len(rec.Data), c.maxRecord)
	}
	if len(rec.Principal) > MaxPrincipal {
		return 0, PrincipalError(rec.Principal)
	}
	op := fastSaveIf
	if rec.Principal != "" {
		op = fastSaveIfP
	}
	data := make([]byte, 0, len(rec.Principal)+8+len(rec.Data))
	data = binary.LittleEndian.AppendUint64(append(data, rec.Principal...), expect)
	data = append(data, rec.Data...)
	_, body, err := c.callP(ctx, op, id, byte(len(rec.Principal)), data, rec.Expires.UnixMilli())
	if err != nil {
		return 0, err
	}
	if len(body) < 8 {
		return 0, fmt.Errorf("%w: SaveIf answered without a version", ErrTransport)
	}
	return binary.LittleEndian.Uint64(body), nil
}

// Lock takes the lock of id for token (protocol 2).
func (c *FastClient) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	if len(token) > MaxLockToken {
		return false, fmt.Errorf("lock token of %d bytes, over %d", len(token), MaxLockToken)
	}
	_, body, err := c.call(ctx, fastLock, id, []byte(token), ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return len(body) == 1 && body[0] == 1, nil
}

// Unlock releases the lock of id if token holds it (protocol 2).
func (c *FastClient) Unlock(ctx context.Context, id, token string) error {
	_, _, err := c.call(ctx, fastUnlock, id, []byte(token), 0)
	return err
}

// CloseAll destroys every live record of principal (protocol 2,
// capability "index").
func (c *FastClient) CloseAll(ctx context.Context, principal string) (int, error) {
	if len(principal) > MaxPrincipal {
		return 0, PrincipalError(principal)
	}
	_, body, err := c.call(ctx, fastCloseAll, principal, nil, 0)
	if err != nil {
		return 0, err
	}
	if len(body) < 8 {
		return 0, fmt.Errorf("%w: CloseAll answered without a count", ErrTransport)
	}
	return int(binary.LittleEndian.Uint64(body)), nil
}

// Close destroys the record for id (Shutdown releases the client).
func (c *FastClient) Close(ctx context.Context, id string) error {
	_, _, err := c.call(ctx, fastClose, id, nil, 0)
	return err
}

// call sends one request and reads its response on a pooled connection.
func (c *FastClient) call(ctx context.Context, op byte, id string, data []byte, expires int64) (fastHeader, []byte, error) {
	return c.callP(ctx, op, id, 0, data, expires)
}

// callP is call for a request whose data starts with a principal of pLen
// bytes (saveP, saveIfP).
func (c *FastClient) callP(ctx context.Context, op byte, id string, pLen byte, data []byte, expires int64) (fastHeader, []byte, error) {
	if err := ctx.Err(); err != nil {
		return fastHeader{}, nil, err
	}
	if len(id) > 255 {
		return fastHeader{}, nil, fmt.Errorf("%w: %d characters", ErrInvalidID, len(id))
	}
	deadline, _ := ctx.Deadline()
	if c.timeout > 0 {
		if own := time.Now().Add(c.timeout); deadline.IsZero() || own.Before(deadline) {
			deadline = own
		}
	}
	fc, err := c.get(ctx, deadline)
	if err != nil {
		return fastHeader{}, nil, err
	}
	fc.c.SetDeadline(deadline) // the zero time when there is none
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, fc.interrupt)
	}
	req := fastHeader{op: op, pLen: pLen, expires: expires}
	if !deadline.IsZero() {
		req.deadline = deadline.UnixNano()
	}
	resp, body, err := fc.exchange(&req, id, data, c.maxRecord)
	reusable := err == nil
	if stop != nil && !stop() {
		// The context ended during the call: the interrupt may still be
		// touching the connection, so it cannot go back to the pool.
		reusable = false
		if err != nil {
			err = ctx.Err()
		}
	}
	if reusable {
		c.put(fc)
	} else {
		fc.c.Close()
	}
	if err != nil {
		return fastHeader{}, nil, c.explain(ctx, err)
	}
	if resp.status == fastConflict {
		return resp, nil, conflictFrom(resp, body)
	}
	if resp.status != fastOK {
		return resp, nil, fastError(resp.status, string(body))
	}
	return resp, body, nil
}

// conflictFrom decodes a fastConflict answer.
func conflictFrom(resp fastHeader, body []byte) error {
	if len(body) < 9 {
		return fmt.Errorf("%w: a conflict answer of %d bytes", ErrTransport, len(body))
	}
	ce := &ConflictError{Found: body[0] == 1}
	if ce.Found {
		ce.Current = Record{Data: body[9:], Expires: time.UnixMilli(resp.expires), Version: binary.LittleEndian.Uint64(body[1:])}
	}
	return ce
}

// explain turns a failed exchange into the error callers branch on.
func (c *FastClient) explain(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, ErrTooLarge):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline (the call's) passed a moment before
		// the context noticed.
		return fmt.Errorf("%w: no answer from the handler in time", context.DeadlineExceeded)
	default:
		return fmt.Errorf("%w: %s: %v", ErrTransport, c.addr, err)
	}
}

// exchange writes one request frame and reads the frame that answers it.
// An answer whose body is over maxRecord (plus room for a message) is
// ErrTooLarge, refused before its body is read.
func (fc *fastConn) exchange(req *fastHeader, id string, data []byte, maxRecord int) (fastHeader, []byte, error) {
	fc.tag++
	req.tag = fc.tag
	req.idLen = byte(len(id))
	req.bodyLen = uint32(len(id) + len(data))
	n := fastHeaderLen + len(id)
	inline := len(data) <= fastInline
	size := n
	if inline {
		size += len(data)
	}
	if cap(fc.buf) < size {
		fc.buf = make([]byte, size)
	}
	b := fc.buf[:size]
	req.put(b)
	copy(b[fastHeaderLen:], id)
	if inline {
		copy(b[n:], data)
	}
	if _, err := fc.c.Write(b); err != nil {
		return fastHeader{}, nil, err
	}
	if !inline {
		if _, err := fc.c.Write(data); err != nil {
			return fastHeader{}, nil, err
		}
	}
	var resp fastHeader
	if err := readHeader(fc.r, fc.hdr[:], &resp); err != nil {
		return fastHeader{}, nil, err
	}
	if int64(resp.bodyLen) > int64(maxRecord)+256 {
		return fastHeader{}, nil, fmt.Errorf("%w: the handler answered with %d bytes, over the limit of %d", ErrTooLarge, resp.bodyLen, maxRecord)
	}
	if resp.tag != req.tag || resp.op != req.op {
		return fastHeader{}, nil, fmt.Errorf("answer for request %d (op %d) arrived for request %d (op %d)", resp.tag, resp.op, req.tag, req.op)
	}
	var body []byte
	if resp.bodyLen > 0 {
		body = make([]byte, resp.bodyLen)
		if _, err := io.ReadFull(fc.r, body); err != nil {
			return fastHeader{}, nil, err
		}
	}
	return resp, body, nil
}

// get takes an idle connection or dials a new one and presents the secret
// before deadline (or within fastDialTimeout when it is zero).
func (c *FastClient) get(ctx context.Context, deadline time.Time) (*fastConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: the client is closed", ErrTransport, c.addr)
	}
	if n := len(c.idle); n > 0 {
		fc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return fc, nil
	}
	c.mu.Unlock()

	if deadline.IsZero() {
		deadline = time.Now().Add(fastDialTimeout)
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "unix", c.addr)
	if err != nil {
		return nil, c.explain(ctx, err)
	}
	uc := conn.(*net.UnixConn)
	fc := &fastConn{c: uc, r: bufio.NewReaderSize(uc, 32<<10)}
	fc.interrupt = func() { uc.SetDeadline(time.Unix(1, 0)) }
	uc.SetDeadline(deadline)
	hello := fastHeader{op: fastHello}
	resp, _, err := fc.exchange(&hello, "", c.secret, c.maxRecord)
	if err == nil && resp.status != fastOK {
		err = fmt.Errorf("the handler refused the hello (status %d)", resp.status)
	}
	if err != nil {
		uc.Close()
		return nil, c.explain(ctx, fmt.Errorf("hello: %w", err))
	}
	return fc, nil
}

// put returns a healthy connection to the pool.
func (c *FastClient) put(fc *fastConn) {
	c.mu.Lock()
	if c.closed || len(c.idle) >= fastMaxIdle {
		c.mu.Unlock()
		fc.c.Close()
		return
	}
	c.idle = append(c.idle, fc)
	c.mu.Unlock()
}
