package redis

import (
	"crypto/tls"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func itoa(n int) string { return strconv.Itoa(n) }

func TestOptionsFromEnv(t *testing.T) {
	type want struct {
		addrs              []string
		master             string
		user, password     string
		db                 int
		tls                bool
		serverName, prefix string
		cluster            bool
	}
	tests := []struct {
		name string
		env  map[string]string
		want want
	}{
		{"defaults", nil,
			want{addrs: []string{"localhost:6379"}, prefix: DefaultPrefix}},
		{"Tina4's host, port and secret", map[string]string{EnvHost: "cache.internal", EnvPort: "6380", EnvSecret: "tina4pw"},
			want{addrs: []string{"cache.internal:6380"}, password: "tina4pw", prefix: DefaultPrefix}},
		{"password wins over secret", map[string]string{EnvSecret: "old", EnvPassword: "new"},
			want{addrs: []string{"localhost:6379"}, password: "new", prefix: DefaultPrefix}},
		{"user, database, prefix, spaces trimmed", map[string]string{EnvUsername: " app ", EnvPassword: "pw", EnvDB: " 3 ", EnvPrefix: " shop:sess: "},
			want{addrs: []string{"localhost:6379"}, user: "app", password: "pw", db: 3, prefix: "shop:sess:"}},
		{"IPv6 host", map[string]string{EnvHost: "[::1]"},
			want{addrs: []string{"[::1]:6379"}, prefix: DefaultPrefix}},
		{"TLS names the host", map[string]string{EnvHost: "redis.example.com", EnvTLS: "true"},
			want{addrs: []string{"redis.example.com:6379"}, tls: true, serverName: "redis.example.com", prefix: DefaultPrefix}},
		{"TLS off", map[string]string{EnvTLS: "false"},
			want{addrs: []string{"localhost:6379"}, prefix: DefaultPrefix}},
		{"URL wins over host and port", map[string]string{EnvURL: "redis://u:p@db.internal:7000/5", EnvHost: "ignored", EnvPort: "1", EnvPassword: "ignored"},
			want{addrs: []string{"db.internal:7000"}, user: "u", password: "p", db: 5, prefix: DefaultPrefix}},
		{"URL without credentials uses the password setting", map[string]string{EnvURL: "redis://db.internal", EnvUsername: "app", EnvPassword: "pw", EnvDB: "4"},
			want{addrs: []string{"db.internal:6379"}, user: "app", password: "pw", db: 4, prefix: DefaultPrefix}},
		{"rediss URL", map[string]string{EnvURL: "rediss://:p@secure.example.com:6380/1"},
			want{addrs: []string{"secure.example.com:6380"}, password: "p", db: 1, tls: true, serverName: "secure.example.com", prefix: DefaultPrefix}},
		{"redis URL with TLS setting", map[string]string{EnvURL: "redis://secure.example.com", EnvTLS: "1"},
			want{addrs: []string{"secure.example.com:6379"}, tls: true, serverName: "secure.example.com", prefix: DefaultPrefix}},
		{"one address in ADDRS is a single Redis", map[string]string{EnvAddrs: "r1:7000", EnvHost: "ignored", EnvTLS: "yes"},
			want{addrs: []string{"r1:7000"}, tls: true, serverName: "r1", prefix: DefaultPrefix}},
		{"several addresses in ADDRS are a Cluster", map[string]string{EnvAddrs: "n1:7000, n2:7001,,n3:7002", EnvPassword: "pw", EnvTLS: "true"},
			want{addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, password: "pw", tls: true, cluster: true, prefix: DefaultPrefix}},
		{"ADDRS and MASTER are Sentinel", map[string]string{EnvAddrs: "s1:26379,s2:26379,s3:26379", EnvMaster: "mymaster", EnvDB: "2"},
			want{addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, master: "mymaster", db: 2, prefix: DefaultPrefix}},
		{"one Sentinel", map[string]string{EnvAddrs: "s1:26379", EnvMaster: "mymaster"},
			want{addrs: []string{"s1:26379"}, master: "mymaster", prefix: DefaultPrefix}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := OptionsFromEnv(env(tc.env))
			if err != nil {
				t.Fatalf("OptionsFromEnv: want options, got error %v", err)
			}
			u, w := opts.Redis, tc.want
			if !slices.Equal(u.Addrs, w.addrs) || u.MasterName != w.master || u.DB != w.db {
				t.Errorf("addresses, master, db: want %q %q %d, got %q %q %d", w.addrs, w.master, w.db, u.Addrs, u.MasterName, u.DB)
			}
			if u.Username != w.user || u.Password != w.password {
				t.Errorf("user, password: want %q %q, got %q %q", w.user, w.password, u.Username, u.Password)
			}
			if opts.Prefix != w.prefix {
				t.Errorf("prefix: want %q, got %q", w.prefix, opts.Prefix)
			}
			switch {
			case !w.tls && u.TLSConfig != nil:
				t.Errorf("TLS: want none, got %+v", u.TLSConfig)
			case w.tls && u.TLSConfig == nil:
				t.Errorf("TLS: want it on, got none")
			case w.tls && (u.TLSConfig.MinVersion != tls.VersionTLS12 || u.TLSConfig.ServerName != w.serverName || u.TLSConfig.InsecureSkipVerify):
				t.Errorf("TLS: want TLS 1.2+ verifying ServerName %q, got MinVersion %x ServerName %q InsecureSkipVerify %v",
					w.serverName, u.TLSConfig.MinVersion, u.TLSConfig.ServerName, u.TLSConfig.InsecureSkipVerify)
			}
			// The mode go-redis picks from these options (no connection is made).
			c := redis.NewUniversalClient(u)
			defer c.Close()
			if _, isCluster := c.(*redis.ClusterClient); isCluster != w.cluster {
				t.Errorf("client: want a cluster client %v, got %T", w.cluster, c)
			}
		})
	}
}

func TestOptionsFromEnvRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, variable string
		env            map[string]string
	}{
		{"port not a number", EnvPort, map[string]string{EnvPort: "redis"}},
		{"port zero", EnvPort, map[string]string{EnvPort: "0"}},
		{"port too big", EnvPort, map[string]string{EnvPort: "70000"}},
		{"host with a port", EnvHost, map[string]string{EnvHost: "cache:6379"}},
		{"host as a URL", EnvHost, map[string]string{EnvHost: "redis://cache"}},
		{"db not a number", EnvDB, map[string]string{EnvDB: "sessions"}},
		{"db negative", EnvDB, map[string]string{EnvDB: "-1"}},
		{"TLS neither true nor false", EnvTLS, map[string]string{EnvTLS: "sometimes"}},
		{"ADDRS entry without a port", EnvAddrs, map[string]string{EnvAddrs: "n1:7000,n2"}},
		{"ADDRS entry with a bad port", EnvAddrs, map[string]string{EnvAddrs: "n1:7000,n2:x"}},
		{"ADDRS with no address", EnvAddrs, map[string]string{EnvAddrs: " , "}},
		{"MASTER without ADDRS", EnvMaster, map[string]string{EnvMaster: "mymaster"}},
		{"URL and ADDRS", EnvAddrs, map[string]string{EnvURL: "redis://a", EnvAddrs: "b:1,c:2"}},
		{"URL and MASTER", EnvMaster, map[string]string{EnvURL: "redis://a", EnvMaster: "m"}},
		{"URL with another scheme", EnvURL, map[string]string{EnvURL: "http://cache:6379"}},
		{"URL unix socket", EnvURL, map[string]string{EnvURL: "unix:///run/redis.sock"}},
		{"URL unparsable", EnvURL, map[string]string{EnvURL: "redis://:s3cret@cache:port/0"}},
		{"URL with a bad database", EnvURL, map[string]string{EnvURL: "redis://:s3cret@cache/one"}},
		{"URL with an unknown option", EnvURL, map[string]string{EnvURL: "redis://:s3cret@cache/0?colour=blue"}},
		{"URL and DB disagree", EnvDB, map[string]string{EnvURL: "redis://cache/1", EnvDB: "2"}},
		{"rediss URL and TLS=false", EnvTLS, map[string]string{EnvURL: "rediss://cache", EnvTLS: "false"}},
		{"DB for a Cluster", EnvDB, map[string]string{EnvAddrs: "n1:7000,n2:7001,n3:7002", EnvDB: "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OptionsFromEnv(env(tc.env))
			if err == nil {
				t.Fatalf("OptionsFromEnv(%v): want an error, got options", tc.env)
			}
			if !strings.Contains(err.Error(), tc.variable) {
				t.Errorf("want the error to name %s, got %q", tc.variable, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error must not repeat the password, got %q", err)
			}
		})
	}
}
