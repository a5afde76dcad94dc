package host_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"

	"github.com/tina4go/sessions/host"
	"github.com/tina4go/sessions/host/config"
)

// A web app with sessions: open the host, wrap the app, and use the
// request's session in handlers. Here the configuration is spelled out so
// the example runs anywhere; an app normally calls host.Open(ctx) and lets
// the environment or .env decide (see docs/configuration.md).
func Example() {
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_FOLDER=" + dir + "/sessions", // the built-in file handler stores here
		"TINA4_PLUGIN_DIR=" + dir + "/plugins",      // no binaries: the built-in serves
		"TINA4_SECRET=example-secret-0123456789abcdef",
	}})
	if err != nil {
		log.Fatal(err)
	}
	h, err := host.Open(context.Background(), host.WithConfig(cfg))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := host.FromRequest(r)
		s.Regenerate() // new id at login: defeats session fixation
		s.Set("user", "alice")
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s := host.FromRequest(r)
		user, _ := s.GetString("user")
		fmt.Fprintf(w, "user=%s keys=%v", user, s.Keys())
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		host.FromRequest(r).Destroy()
	})
	srv := httptest.NewServer(h.Wrap(mux))
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(method, path string) string {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	get("POST", "/login")
	fmt.Println(get("GET", "/me"))
	get("POST", "/logout")
	fmt.Println(get("GET", "/me"))
	// Output:
	// user=alice keys=[user]
	// user= keys=[]
}
