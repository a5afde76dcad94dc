package file

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A session file is one header line followed by the record's data, byte for
// byte:
//
//	tina4-session-v1 <expires, Unix milliseconds> <data length in bytes>\n
//	<data>
//
// The length lets Load and Sweep tell a complete file from a cut-off one.

// magic is the first word of every session file, naming the format version.
const magic = "tina4-session-v1"

// maxHeaderLen bounds the header line, newline included. A real header is at
// most 17 + 20 + 1 + 20 + 1 = 59 bytes.
const maxHeaderLen = 128

// errDamaged marks a session file that is not in the format above.
var errDamaged = errors.New("session file is damaged")

// header is what the first line of a session file says.
type header struct {
	expires time.Time
	dataLen int64
	size    int // bytes of the header line, newline included
}

// appendHeader appends the header line for a record to b.
func appendHeader(b []byte, expires time.Time, dataLen int) []byte {
	b = append(b, magic...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, expires.UnixMilli(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(dataLen), 10)
	return append(b, '\n')
}

// parseHeader reads the header line at the start of b. Only the first
// maxHeaderLen bytes are looked at. Any deviation from the format is an
// error wrapping errDamaged; parseHeader never panics.
func parseHeader(b []byte) (header, error) {
	if len(b) > maxHeaderLen {
		b = b[:maxHeaderLen]
	}
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		return header{}, fmt.Errorf("%w: no header line in its first %d bytes", errDamaged, len(b))
	}
	fields := bytes.Split(b[:end], []byte{' '})
	if len(fields) != 3 || string(fields[0]) != magic {
		return header{}, fmt.Errorf("%w: header does not start with %q and hold 3 fields", errDamaged, magic)
	}
	ms, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return header{}, fmt.Errorf("%w: expiry in header is not a number", errDamaged)
	}
	n, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil || n < 0 {
		return header{}, fmt.Errorf("%w: data length in header is not a number of bytes", errDamaged)
	}
	return header{expires: time.UnixMilli(ms), dataLen: n, size: end + 1}, nil
}
