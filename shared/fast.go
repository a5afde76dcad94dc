package shared

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The fast transport carries every call but Info and Health between the host and a Go
// handler over a private Unix socket, after go-plugin has launched the
// handler and the two have met over gRPC with mutual TLS. Info reports the
// socket (Info.FastAddr) and a per-launch secret (Info.FastSecret); the host
// opens connections to that socket and presents the secret in a hello frame
// before anything else. A connection then carries length-prefixed frames:
//
//	offset size  request                       response
//	0      4     body length (id + data)       body length
//	4      4     tag                           the request's tag
//	8      1     op                            the request's op
//	9      1     0                             status (fastOK, fastNotFound, ...)
//	10     1     id length                     0
//	11     1     principal length (saveP and   0
//	             saveIfP; 0 for other ops)
//	12     4     0                             0
//	16     8     deadline, Unix ns (0: none)   0
//	24     8     Save: expiry, Unix ms         Load: expiry, Unix ms
//	32     ...   id, then Save's data          Load's data, or an error message
//
// Protocol 2 adds four ops, used only with a handler that reports the
// capability they need, so a host never sends them to an older handler:
//
//	op        request body                    response body (status OK)
//	loadV     id                              version (8), data
//	saveIf    id, expected version (8), data  new version (8)
//	lock      id, token; ttl ms at offset 24  1 (acquired) or 0
//	unlock    id, token                       empty
//
// saveIf answers a conflict with status fastConflict and the body found (1),
// version (8), data, the stored record's expiry at offset 24.
//
// Capability "index" adds three more, sent only to a handler that reports
// it (an older one answers fastBadRequest, "unknown op", which the client
// reports as ErrUnsupported; a newer one without the capability drops the
// principal, or answers closeAll with fastUnsupported). saveP and saveIfP
// are save and saveIf of a record with a principal; the principal's length
// is byte 11 of the header and the principal follows the id. A record
// without a principal still goes as save or saveIf:
//
//	op        request body                               response body (status OK)
//	saveP     id, principal, data                        empty
//	saveIfP   id, principal, expected version (8), data  as saveIf's
//	closeAll  principal (in the id's place)              records destroyed (8)
//
// Integers are little-endian. The host sends one request at a time on a
// connection and keeps a pool of connections, so a slow call never delays
// another; the server handles every request in its own goroutine and tags
// its answers, so a connection may carry several at once. Closing a
// connection cancels the calls in flight on it.

// FastDirEnv names the environment variable through which the host gives a
// handler the private directory (mode 0700, made by the host) in which to
// create its fast-transport socket. A handler without it serves gRPC only.
const FastDirEnv = "TINA4_PLUGIN_FAST_DIR"

// FastSocketName is the file name of the fast-transport socket inside the
// directory named by FastDirEnv.
const FastSocketName = "handler.sock"

// FastSecretSize is the size of the per-launch secret, in bytes.
const FastSecretSize = 32

// MaxRecordSize is the largest Record.Data the protocol carries, on either
// transport; a host may set a lower limit of its own
// (TINA4_SESSION_MAX_BYTES). A larger record is ErrTooLarge.
const MaxRecordSize = 16 << 20

// ErrTooLarge is returned for a record larger than the limit.
var ErrTooLarge = errors.New("session record too large")

// ErrTransport marks a failure to reach a handler over the fast transport:
// the connection could not be made, or it broke. The process may be gone.
var ErrTransport = errors.New("fast transport failure")

const (
	fastHeaderLen = 32
	// fastMaxBody bounds a frame body: an id and a record, or a message.
	fastMaxBody = MaxRecordSize + 256
)

// Ops.
const (
	fastHello byte = iota + 1
	fastLoad
	fastSave
	fastClose
	fastLoadV
	fastSaveIf
	fastLock
	fastUnlock
	fastSaveP
	fastSaveIfP
	fastCloseAll
)

// Statuses.
const (
	fastOK byte = iota
	fastNotFound
	fastInvalidID
	fastDeadline
	fastCanceled
	fastFailed
	fastTooLarge
	fastBadRequest
	fastConflict
	fastUnsupported
)

// fastHeader is one decoded frame header.
type fastHeader struct {
	bodyLen  uint32
	tag      uint32
	op       byte
	status   byte
	idLen    byte
	pLen     byte  // principal length (saveP, saveIfP)
	deadline int64 // Unix ns, 0 for none
	expires  int64 // Unix ms
}

func (h *fastHeader) put(b []byte) {
	_ = b[fastHeaderLen-1]
	binary.LittleEndian.PutUint32(b[0:], h.bodyLen)
	binary.LittleEndian.PutUint32(b[4:], h.tag)
	b[8], b[9], b[10], b[11] = h.op, h.status, h.idLen, h.pLen
	clear(b[12:16])
	binary.LittleEndian.PutUint64(b[16:], uint64(h.deadline))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.expires))
}

func (h *fastHeader) parse(b []byte) error {
	_ = b[fastHeaderLen-1]
	h.bodyLen = binary.LittleEndian.Uint32(b[0:])
	h.tag = binary.LittleEndian.Uint32(b[4:])
	h.op, h.status, h.idLen, h.pLen = b[8], b[9], b[10], b[11]
	h.deadline = int64(binary.LittleEndian.Uint64(b[16:]))
	h.expires = int64(binary.LittleEndian.Uint64(b[24:]))
	if h.bodyLen > fastMaxBody {
		return fmt.Errorf("%w: a frame of %d bytes", ErrTooLarge, h.bodyLen)
	}
	if uint32(h.idLen)+uint32(h.pLen) > h.bodyLen {
		return fmt.Errorf("malformed frame: id length %d and principal length %d in a body of %d bytes", h.idLen, h.pLen, h.bodyLen)
	}
	return nil
}

// readHeader reads one frame header from r into buf and parses it.
func readHeader(r io.Reader, buf []byte, h *fastHeader) error {
	if _, err := io.ReadFull(r, buf[:fastHeaderLen]); err != nil {
		return err
	}
	return h.parse(buf)
}

// fastStatus turns a handler error into a status and the message sent with it.
func fastStatus(err error) (byte, string) {
	switch {
	case err == nil:
		return fastOK, ""
	case errors.Is(err, ErrNotFound):
		return fastNotFound, ""
	case errors.Is(err, ErrInvalidID):
		return fastInvalidID, err.Error()
	case errors.Is(err, ErrTooLarge):
		return fastTooLarge, err.Error()
	case errors.Is(err, ErrUnsupported):
		return fastUnsupported, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return fastDeadline, err.Error()
	case errors.Is(err, context.Canceled):
		return fastCanceled, err.Error()
	default:
		return fastFailed, err.Error()
	}
}

// fastError turns a response status back into the error the gRPC adapter
// would have returned for it, so both transports mean the same.
func fastError(status byte, msg string) error {
	switch status {
	case fastOK:
		return nil
	case fastNotFound:
		return ErrNotFound
	case fastInvalidID:
		return fmt.Errorf("%w: %s", ErrInvalidID, msg)
	case fastTooLarge:
		return fmt.Errorf("%w: %s", ErrTooLarge, msg)
	case fastDeadline:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, msg)
	case fastCanceled:
		return fmt.Errorf("%w: %s", context.Canceled, msg)
	case fastFailed:
		return &RemoteError{Msg: msg}
	case fastUnsupported:
		return fmt.Errorf("%w: %s", ErrUnsupported, msg)
	case fastBadRequest:
		// A handler that does not know the op (an older one) or could not
		// read the request: it did nothing, and the process is fine.
		return fmt.Errorf("%w: the handler refused the request: %s", ErrUnsupported, msg)
	default:
		return fmt.Errorf("%w: the handler answered with unknown status %d (%s)", ErrTransport, status, msg)
	}
}
