package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

// getAs calls the typed getter named kind.
func getAs(s *Session, kind, key string) (any, bool) {
	switch kind {
	case "string":
		return s.GetString(key)
	case "int":
		return s.GetInt(key)
	case "int64":
		return s.GetInt64(key)
	case "float":
		return s.GetFloat(key)
	case "bool":
		return s.GetBool(key)
	case "time":
		return s.GetTime(key)
	case "bytes":
		return s.GetBytes(key)
	}
	panic("unknown getter " + kind)
}

// zeroOf is what each getter must return with false.
var zeroOf = map[string]any{
	"string": "", "int": 0, "int64": int64(0), "float": 0.0, "bool": false,
	"time": time.Time{}, "bytes": []byte(nil),
}

func TestTypedGetters(t *testing.T) {
	offset := time.FixedZone("IST", 5*3600+30*60)
	when := time.Date(2024, 2, 29, 23, 59, 58, 123456789, offset)
	west := time.Date(1999, 12, 31, 1, 2, 3, 1, time.FixedZone("", -(9*3600+45*60)))
	values := map[string]any{
		"str":      "alice",
		"empty":    "",
		"numstr":   "12",
		"yes":      true,
		"no":       false,
		"int":      42,
		"neg":      -7,
		"big":      int64(1<<62 + 1),
		"max":      int64(math.MaxInt64),
		"min":      int64(math.MinInt64),
		"uint":     uint64(math.MaxUint64), // beyond int64
		"float":    1.5,
		"negfloat": -0.25,
		"whole":    3.0,  // a whole float64 is written as 3: an integer
		"huge":     1e20, // whole, but beyond int64
		"tiny":     1e-7, // written with an exponent
		"null":     nil,
		"when":     when,
		"west":     west,
		"notime":   "yesterday",
		"bytes":    []byte{0, 1, 2, 0xfe, 0xff},
		"nobytes":  []byte{},
		"nilbytes": []byte(nil), // stored as null
		"b64":      "YWJj",      // a string that is valid base64
		"obj":      map[string]int{"a": 1},
		"arr":      []int{1, 2},
	}
	s := &Session{}
	for k, v := range values {
		if err := s.Set(k, v); err != nil {
			t.Fatal(k, err)
		}
	}
	// What each getter gives for each key; a key missing from a getter's
	// row gives its zero value and false.
	want := map[string]map[string]any{
		"string": {"str": "alice", "empty": "", "numstr": "12", "notime": "yesterday", "b64": "YWJj",
			"when": when.Format(time.RFC3339Nano), "west": west.Format(time.RFC3339Nano),
			"bytes": "AAEC/v8=", "nobytes": ""},
		"int": {"int": 42, "neg": -7, "whole": 3, "big": 1<<62 + 1, "max": math.MaxInt64, "min": math.MinInt64},
		"int64": {"int": int64(42), "neg": int64(-7), "whole": int64(3), "big": int64(1<<62 + 1),
			"max": int64(math.MaxInt64), "min": int64(math.MinInt64)},
		"float": {"int": 42.0, "neg": -7.0, "whole": 3.0, "big": float64(1<<62 + 1), "max": float64(math.MaxInt64),
			"min": float64(math.MinInt64), "uint": float64(math.MaxUint64), "float": 1.5, "negfloat": -0.25,
			"huge": 1e20, "tiny": 1e-7},
		"bool":  {"yes": true, "no": false},
		"time":  {"when": when, "west": west},
		"bytes": {"bytes": []byte{0, 1, 2, 0xfe, 0xff}, "nobytes": []byte{}, "b64": []byte("abc"), "empty": []byte{}},
	}
	if strconv.IntSize == 32 {
		for _, k := range []string{"big", "max", "min"} {
			delete(want["int"], k)
		}
	}
	keys := append(s.Keys(), "missing")
	for kind, row := range want {
		for _, key := range keys {
			t.Run(kind+"/"+key, func(t *testing.T) {
				got, ok := getAs(s, kind, key)
				w, wantOK := row[key]
				if !wantOK {
					w = zeroOf[kind]
				}
				if ok != wantOK {
					t.Fatalf("Get%s(%q) = %#v, %v; want ok %v", kind, key, got, ok, wantOK)
				}
				if gt, isTime := got.(time.Time); isTime {
					wt := w.(time.Time)
					_, gotOff := gt.Zone()
					_, wantOff := wt.Zone()
					if !gt.Equal(wt) || gotOff != wantOff || gt.Format(time.RFC3339Nano) != wt.Format(time.RFC3339Nano) {
						t.Fatalf("GetTime(%q) = %v, want %v", key, gt, wt)
					}
					return
				}
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("Get%s(%q) = %#v, want %#v", kind, key, got, w)
				}
			})
		}
	}
	if s.Has("missing") || !s.Has("str") || !s.Has("null") {
		t.Fatal("Has: wrong answer")
	}
}

// A value read back from the store keeps int64 exact through the whole
// round trip: seal, save, load, open.
func TestGetInt64IsExactThroughTheStore(t *testing.T) {
	m, _, _ := newManager(t)
	const big = int64(1<<62 + 1)
	when := time.Date(2030, 1, 2, 3, 4, 5, 999999999, time.FixedZone("", -3*3600))
	id := stored(t, m, map[string]any{"n": big, "neg": -big, "when": when, "raw": []byte("\x00hi")})
	s := load(t, m, id)
	defer m.Release(s)
	if n, ok := s.GetInt64("n"); !ok || n != big {
		t.Fatalf("GetInt64 = %d, %v; want %d", n, ok, big)
	}
	if n, ok := s.GetInt64("neg"); !ok || n != -big {
		t.Fatalf("GetInt64 = %d, %v; want %d", n, ok, -big)
	}
	if got, ok := s.GetTime("when"); !ok || !got.Equal(when) || got.Format(time.RFC3339Nano) != when.Format(time.RFC3339Nano) {
		t.Fatalf("GetTime = %v, %v; want %v", got, ok, when)
	}
	if b, ok := s.GetBytes("raw"); !ok || string(b) != "\x00hi" {
		t.Fatalf("GetBytes = %q, %v", b, ok)
	}
}

// Values written by something other than Set (another version, a tool)
// may carry space around them; the getters do not mind.
func TestGettersTolerateSpaceInStoredJSON(t *testing.T) {
	s := &Session{values: map[string]json.RawMessage{
		"n": json.RawMessage(" 12 "), "b": json.RawMessage("\ttrue\n"), "s": json.RawMessage(` "x" `),
		"e": json.RawMessage("1e3"), "f": json.RawMessage("1.0"),
	}}
	if n, ok := s.GetInt("n"); !ok || n != 12 {
		t.Fatalf("GetInt = %d, %v", n, ok)
	}
	if b, ok := s.GetBool("b"); !ok || !b {
		t.Fatalf("GetBool = %v, %v", b, ok)
	}
	if str, ok := s.GetString("s"); !ok || str != "x" {
		t.Fatalf("GetString = %q, %v", str, ok)
	}
	// Only plain integer text is an integer; GetFloat reads any number.
	for _, k := range []string{"e", "f"} {
		if _, ok := s.GetInt64(k); ok {
			t.Fatalf("GetInt64(%q) accepted a number with a fraction or exponent", k)
		}
		if _, ok := s.GetFloat(k); !ok {
			t.Fatalf("GetFloat(%q) refused a number", k)
		}
	}
}

func TestGettersDoNotMarkTheSessionChanged(t *testing.T) {
	s := &Session{}
	s.Set("k", 1)
	s.dirty, s.changes = false, nil
	for kind := range zeroOf {
		getAs(s, kind, "k")
		getAs(s, kind, "missing")
	}
	s.Has("k")
	if s.dirty || s.changes != nil {
		t.Fatal("a getter marked the session changed")
	}
}

func TestPop(t *testing.T) {
	s := &Session{}
	s.Set("flash", "saved")
	s.Set("n", 5)
	s.dirty, s.changes = false, nil

	if v, ok := s.Pop("missing"); ok || v != nil {
		t.Fatalf("Pop(missing) = %v, %v", v, ok)
	}
	if str, ok := s.PopString("n"); ok || str != "" {
		t.Fatalf("PopString of a number = %q, %v", str, ok)
	}
	if s.dirty || s.changes != nil || !s.Has("n") {
		t.Fatal("a Pop that found nothing (or another type) changed the session")
	}

	if str, ok := s.PopString("flash"); !ok || str != "saved" {
		t.Fatalf("PopString = %q, %v", str, ok)
	}
	if s.Has("flash") || !s.dirty {
		t.Fatal("PopString did not remove the key or mark the session changed")
	}
	if raw, ok := s.changes["flash"]; !ok || raw != nil {
		t.Fatalf("PopString did not record a removal: %q, %v", raw, ok)
	}
	if str, ok := s.PopString("flash"); ok || str != "" {
		t.Fatal("a second PopString found the message again")
	}

	if v, ok := s.Pop("n"); !ok || v != 5.0 {
		t.Fatalf("Pop = %#v, %v; want 5.0 (decoded as Get decodes)", v, ok)
	}
	if raw, ok := s.changes["n"]; !ok || raw != nil || s.Has("n") {
		t.Fatal("Pop did not remove the key and record the removal")
	}
}

func TestClear(t *testing.T) {
	s := &Session{}
	s.Clear() // nothing to clear: no change
	if s.dirty || s.changes != nil {
		t.Fatal("Clear of an empty session marked it changed")
	}
	s.Set("a", 1)
	s.Set("b", "two")
	s.dirty, s.changes = false, nil
	s.Clear()
	if len(s.Keys()) != 0 || !s.dirty {
		t.Fatalf("after Clear: keys %v, dirty %v", s.Keys(), s.dirty)
	}
	for _, k := range []string{"a", "b"} {
		if raw, ok := s.changes[k]; !ok || raw != nil {
			t.Fatalf("Clear did not record the removal of %q", k)
		}
	}
	s.Set("c", true) // usable afterwards
	if v, ok := s.GetBool("c"); !ok || !v {
		t.Fatal("Set after Clear failed")
	}
}

// A cleared session with nothing set again is deleted at commit and its
// cookie expired, as when Unset removes the last key.
func TestClearEmptiesTheStoredSession(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"a": 1, "b": 2})
	s := load(t, m, id)
	s.Clear()
	if a := commit(t, m, s); a != CookieExpire {
		t.Fatalf("commit after Clear: cookie action %v, want CookieExpire", a)
	}
	if got := reload(t, m, id); got != nil {
		t.Fatalf("after Clear the session is still stored: %v", got)
	}
}

// The flash idiom across requests, and Pop and Clear against overlapping
// requests: each removes only what its request saw; a key another request
// set meanwhile stays.
func TestPopAndClearMergeWithOverlappingRequests(t *testing.T) {
	for name, managers := range map[string]func(t *testing.T) (*Manager, *Manager){
		"one host":             func(t *testing.T) (*Manager, *Manager) { m, _, _ := newManager(t); return m, m },
		"two hosts, versioned": func(t *testing.T) (*Manager, *Manager) { a, b, _ := twoHosts(t); return a, b },
	} {
		t.Run(name, func(t *testing.T) {
			ma, mb := managers(t)

			// Pop: the flash is shown once; b's key is kept.
			id := stored(t, ma, map[string]any{"flash": "welcome", "user": "alice"})
			a, b := load(t, ma, id), load(t, mb, id)
			b.Set("theme", "dark")
			commit(t, mb, b)
			if msg, ok := a.PopString("flash"); !ok || msg != "welcome" {
				t.Fatalf("PopString = %q, %v", msg, ok)
			}
			commit(t, ma, a)
			want := map[string]any{"theme": "dark", "user": "alice"}
			if got := reload(t, ma, id); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after Pop: %v, want %v", got, want)
			}

			// Clear: removes user and theme (seen), keeps cart (set by b
			// after a loaded). a sets a value after Clear: a request that
			// leaves its view of the session empty deletes the record
			// instead (see "Concurrency" in docs/user-guide.md).
			a, b = load(t, ma, id), load(t, mb, id)
			b.Set("cart", "3 items")
			commit(t, mb, b)
			a.Clear()
			a.Set("flash", "signed out")
			commit(t, ma, a)
			want = map[string]any{"cart": "3 items", "flash": "signed out"}
			if got := reload(t, ma, id); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after Clear: %v, want %v", got, want)
			}
		})
	}
}

// Run with -race: every method from 8 goroutines of one request.
func TestTypedMethodsAreSafeForConcurrentUse(t *testing.T) {
	s := &Session{}
	s.Set("flash", "once")
	const workers = 8
	var wg sync.WaitGroup
	var popped sync.Map
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg, ok := s.PopString("flash"); ok {
				popped.Store(w, msg)
			}
			for i := range 200 {
				k := fmt.Sprintf("w%d-%d", w, i%10)
				switch i % 5 {
				case 0:
					s.Set(k, int64(1<<62+i))
				case 1:
					s.Set(k, time.Unix(int64(i), int64(w)))
				case 2:
					s.Set(k, []byte(k))
				case 3:
					s.Set(k, i%2 == 0)
				case 4:
					s.Set(k, k)
				}
				for kind := range zeroOf {
					getAs(s, kind, k)
				}
				s.Has(k)
				if i%7 == 0 {
					s.Pop(k)
				}
				if i%50 == 49 && w == 0 {
					s.Clear()
				}
			}
			// Each worker's last value of its own key is still readable
			// as what it is, unless worker 0 cleared it.
			k := fmt.Sprintf("w%d-x", w)
			s.Set(k, int64(w))
			if n, ok := s.GetInt64(k); ok && n != int64(w) {
				t.Errorf("GetInt64(%q) = %d", k, n)
			}
		}()
	}
	wg.Wait()
	n := 0
	popped.Range(func(_, v any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("the flash was popped %d times by %d goroutines, want exactly once", n, workers)
	}
	// Every recorded change matches the values: set keys hold what is
	// recorded, removed ones are gone.
	for k, raw := range s.changes {
		v, ok := s.values[k]
		if raw == nil && ok || raw != nil && !bytes.Equal(v, raw) {
			t.Fatalf("change %q = %q does not match the value %q (set: %v)", k, raw, v, ok)
		}
	}
}
