package token_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tina4go/sessions/host/token"
)

func Example() {
	dir, err := os.MkdirTemp("", "tina4-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// With TINA4_SECRET unset, the host keeps its key in a 0600 file.
	key, created, err := token.LoadOrCreateKey(filepath.Join(dir, ".tina4", "secret.key"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created key file:", created)

	codec, err := token.New(key)
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	sealed, err := codec.Seal("s1", []byte(`{"user":"ann"}`), now, now.Add(30*time.Minute))
	if err != nil {
		log.Fatal(err)
	}

	values, _, err := codec.Open("s1", sealed, now)
	fmt.Println(string(values), err)

	_, _, err = codec.Open("s2", sealed, now)
	fmt.Println(err != nil)
	// Output:
	// created key file: true
	// {"user":"ann"} <nil>
	// true
}

// Rotating the secret: a Codec made with the new secret and the old one as
// previous opens what the old secret sealed, and seals with the new one.
func ExampleNew_previous() {
	oldSecret := []byte("the-old-secret-0123456789abcdef")
	newSecret := []byte("the-new-secret-0123456789abcdef")
	now := time.Now()

	before, err := token.New(oldSecret)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := before.Seal("s1", []byte(`{"user":"ann"}`), now, now.Add(30*time.Minute))
	if err != nil {
		log.Fatal(err)
	}

	rotating, err := token.New(newSecret, oldSecret)
	if err != nil {
		log.Fatal(err)
	}
	values, _, err := rotating.Open("s1", sealed, now)
	fmt.Println(string(values), err)

	// Saving the session again seals it with the new secret only.
	resealed, err := rotating.Seal("s1", values, now, now.Add(30*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = before.Open("s1", resealed, now)
	fmt.Println(errors.Is(err, token.ErrInvalid))
	// Output:
	// {"user":"ann"} <nil>
	// true
}
