package token

import (
	"bytes"
	"sync"
)

// opened remembers, per session id, the last token the Codec sealed or
// opened for it and what that token opens to, so that opening the same
// bytes again skips the signature check, the decryption and both decodes.
// That is the common case: a request loads what the session's previous
// request on this host saved. A token hits only when it is byte for byte one
// the Codec sealed itself or has already verified, for the same session id,
// so a hit gives exactly what a full open would; the expiry is still checked
// against the caller's now. Anything else (another host's write, a tampered
// or foreign token) is a miss and is opened in full.
//
// Its memory is bounded: at most openedMaxBytes in all (tokens and values),
// tokens over openedMaxEntry are not kept, and when a shard is full an
// arbitrary entry of it makes room.
type opened struct {
	shards [openedShards]openedShard
}

const (
	openedShards   = 16
	openedMaxBytes = 16 << 20
	openedMaxEntry = 64 << 10
	// openedOverhead approximates an entry's bookkeeping (map slot, id,
	// slice headers), so that many tiny sessions are bounded too.
	openedOverhead = 160
)

type openedShard struct {
	mu    sync.Mutex
	m     map[string]openedEntry
	bytes int
}

type openedEntry struct {
	token  []byte // the sealed token, the Codec's own copy
	values []byte // what it decrypts to, never handed out (get copies)
	exp    int64  // claim "exp"
	meta   Meta   // the claims Meta holds, as OpenMeta gives them
}

func (e *openedEntry) size() int {
	return len(e.token) + len(e.values) + len(e.meta.Principal) + openedOverhead
}

func (o *opened) shard(id string) *openedShard {
	// Session ids are random, so their last byte spreads them evenly.
	return &o.shards[int(id[len(id)-1])%openedShards]
}

// get returns the entry for id if it holds exactly token.
func (o *opened) get(id string, token []byte) (openedEntry, bool) {
	if id == "" {
		return openedEntry{}, false
	}
	sh := o.shard(id)
	sh.mu.Lock()
	e, ok := sh.m[id]
	sh.mu.Unlock()
	if !ok || !bytes.Equal(e.token, token) {
		return openedEntry{}, false
	}
	return e, true
}

// put makes e id's entry, in place of any earlier one; e's slices must be
// the cache's own from now on. An entry over openedMaxEntry only removes
// the earlier one.
func (o *opened) put(id string, e openedEntry) {
	if id == "" {
		return
	}
	sh := o.shard(id)
	size := e.size()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[id]; ok {
		sh.bytes -= old.size()
		delete(sh.m, id)
	}
	if size > openedMaxEntry {
		return
	}
	if sh.m == nil {
		sh.m = make(map[string]openedEntry)
	}
	for sh.bytes+size > openedMaxBytes/openedShards {
		for k, old := range sh.m { // an arbitrary entry: map order is random
			sh.bytes -= old.size()
			delete(sh.m, k)
			break
		}
	}
	sh.m[id] = e
	sh.bytes += size
}
