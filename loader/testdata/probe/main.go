// Command probe is a test plugin that keeps sessions in memory and acts on
// the first letters of an id, so tests can see what reaches a handler over
// each transport:
//
//	dl...    Load answers with the deadline its ctx carries (RFC 3339, ns)
//	hang...  Load appends "<id> started" to the file named by
//	         TINA4_SESSION_PROBE_LOG, blocks until its ctx is done, then appends
//	         "<id> <ctx.Err()>" and returns ctx.Err()
//	fail...  Load fails with "probe store exploded"
//	huge...  Load returns a record one byte over sdk.MaxRecordSize
//	big...   Load returns a record of 8 MiB (within the protocol's limit)
//	die...   Load makes the process exit at once (a crash)
//	spew...  Load writes 8 MiB to stderr without a newline, then answers not found
//	anything else: an ordinary in-memory store
//
// It is an sdk.Stopper: Stop appends "stopped" to the log.
//
// Installed as "ProbeGRPC" it sets sdk.Config.GRPCOnly.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tina4go/sessions/sdk"
)

type probe struct {
	mu   sync.Mutex
	recs map[string]sdk.Record
	log  string
}

func (p *probe) Load(ctx context.Context, id string) (sdk.Record, error) {
	switch {
	case strings.HasPrefix(id, "dl"):
		dl, ok := ctx.Deadline()
		if !ok {
			return sdk.Record{Data: []byte("none"), Expires: time.Now().Add(time.Hour)}, nil
		}
		return sdk.Record{Data: []byte(dl.Format(time.RFC3339Nano)), Expires: time.Now().Add(time.Hour)}, nil
	case strings.HasPrefix(id, "hang"):
		p.note(id + " started")
		<-ctx.Done()
		p.note(fmt.Sprintf("%s %v", id, ctx.Err()))
		return sdk.Record{}, ctx.Err()
	case strings.HasPrefix(id, "fail"):
		return sdk.Record{}, errors.New("probe store exploded")
	case strings.HasPrefix(id, "die"):
		sdk.Logger().Error("probe: dying on purpose")
		os.Exit(5)
	case strings.HasPrefix(id, "spew"):
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 128 {
			os.Stderr.Write(chunk)
		}
		return sdk.Record{}, sdk.ErrNotFound
	case strings.HasPrefix(id, "big"):
		return sdk.Record{Data: make([]byte, 8<<20), Expires: time.Now().Add(time.Hour)}, nil
	case strings.HasPrefix(id, "huge"):
		return sdk.Record{Data: make([]byte, sdk.MaxRecordSize+1), Expires: time.Now().Add(time.Hour)}, nil
	}
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, ok := p.recs[id]
	if !ok || !rec.Expires.After(time.Now()) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	return rec, nil
}

// note appends a line to the probe's log file.
func (p *probe) note(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, err := os.OpenFile(p.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
}

func (p *probe) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs[id] = r
	return nil
}

func (p *probe) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.recs, id)
	return nil
}

// Stop notes that Serve stopped the handler.
func (p *probe) Stop() { p.note("stopped") }

func main() {
	name := filepath.Base(os.Args[0])
	h := &probe{recs: map[string]sdk.Record{}, log: os.Getenv("TINA4_SESSION_PROBE_LOG")}
	if err := sdk.Serve(sdk.Config{Name: name, Version: "0.0.1", Handler: h, GRPCOnly: name == "ProbeGRPC"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
