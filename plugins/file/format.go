package file

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// A session file is one header line followed by the record's data, byte for
// byte. Every write of a record without a principal makes format v2:
//
//	tina4-session-v2 <expires, Unix milliseconds> <data length in bytes> <version>\n
//	<data>
//
// The version (decimal uint64) names this one write of the record; SaveIf
// compares it. A record with a principal (capability "index", see index.go)
// is written in format v3, which adds the principal key (1 to 128
// characters of 0-9 a-f) as a fifth field:
//
//	tina4-session-v3 <expires> <data length> <version> <principal>\n
//	<data>
//
// Files written before versions existed have format v1, which Load and
// Sweep still read and which reports legacyVersion:
//
//	tina4-session-v1 <expires, Unix milliseconds> <data length in bytes>\n
//	<data>
//
// The length lets Load and Sweep tell a complete file from a cut-off one.

// magic is the first word of every session file this handler writes, naming
// the format version; magicV1 is the format before record versions.
const (
	magic   = "tina4-session-v2"
	magicV1 = "tina4-session-v1"
	magicV3 = "tina4-session-v3"
)

// legacyVersion is the version Load reports for a v1 file, which has none.
// newVersion never returns it, so a SaveIf given it succeeds only while the
// v1 file is still in place.
const legacyVersion uint64 = 1

// maxHeaderLen bounds the header line, newline included. A real v3 header is
// at most 16 + 1 + 20 + 1 + 20 + 1 + 20 + 1 + 128 + 1 = 209 bytes.
const maxHeaderLen = 256

// errDamaged marks a session file that is not in the format above.
var errDamaged = errors.New("session file is damaged")

// header is what the first line of a session file says.
type header struct {
	expires   time.Time
	dataLen   int64
	version   uint64 // legacyVersion for a v1 file
	principal string // "" but for a v3 file
	size      int    // bytes of the header line, newline included
}

// newVersion returns a fresh random version for one write: never 0 (which
// SaveIf reads as "no record") and never legacyVersion. With 64 random bits
// an id does not get a version it had before.
func newVersion() uint64 {
	for {
		if v := rand.Uint64(); v > legacyVersion {
			return v
		}
	}
}

// appendHeader appends the header line for a record to b: v2, or v3 with
// a principal (which the caller has checked).
func appendHeader(b []byte, expires time.Time, dataLen int, version uint64, principal string) []byte {
	if principal == "" {
		b = append(b, magic...)
	} else {
		b = append(b, magicV3...)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, expires.UnixMilli(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(dataLen), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, version, 10)
	if principal != "" {
		b = append(b, ' ')
		b = append(b, principal...)
	}
	return append(b, '\n')
}

// parseHeader reads the header line (v1, v2 or v3) at the start of b. Only the
// first maxHeaderLen bytes are looked at. Any deviation from the format,
// including an unknown format version, is an error wrapping errDamaged;
// parseHeader never panics.
func parseHeader(b []byte) (header, error) {
	if len(b) > maxHeaderLen {
		b = b[:maxHeaderLen]
	}
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		return header{}, fmt.Errorf("%w: no header line in its first %d bytes", errDamaged, len(b))
	}
	fields := bytes.Split(b[:end], []byte{' '})
	var principal string
	switch {
	case len(fields) == 4 && string(fields[0]) == magic:
	case len(fields) == 3 && string(fields[0]) == magicV1:
	case len(fields) == 5 && string(fields[0]) == magicV3:
		principal = string(fields[4])
		if !sdk.ValidPrincipal(principal) {
			return header{}, fmt.Errorf("%w: principal in header is not 1 to 128 characters of 0-9 a-f", errDamaged)
		}
	default:
		return header{}, fmt.Errorf("%w: header is neither %q with 4 fields, %q with 5 nor %q with 3", errDamaged, magic, magicV3, magicV1)
	}
	ms, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return header{}, fmt.Errorf("%w: expiry in header is not a number", errDamaged)
	}
	n, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil || n < 0 {
		return header{}, fmt.Errorf("%w: data length in header is not a number of bytes", errDamaged)
	}
	version := legacyVersion
	if len(fields) >= 4 {
		version, err = strconv.ParseUint(string(fields[3]), 10, 64)
		if err != nil || version == 0 {
			return header{}, fmt.Errorf("%w: version in header is not a number above 0", errDamaged)
		}
	}
	return header{expires: time.UnixMilli(ms), dataLen: n, version: version, principal: principal, size: end + 1}, nil
}
