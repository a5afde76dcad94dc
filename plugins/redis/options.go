package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Settings OptionsFromEnv reads. An unset variable and an empty one are the
// same. The first four are the names Tina4's Redis session handler used.
const (
	// EnvHost is the Redis host name or IP address (default localhost).
	EnvHost = "TINA4_SESSION_REDIS_HOST"
	// EnvPort is the Redis port (default 6379).
	EnvPort = "TINA4_SESSION_REDIS_PORT"
	// EnvSecret is the Redis password under Tina4's name for it.
	EnvSecret = "TINA4_SESSION_REDIS_SECRET"
	// EnvPassword is the Redis password; it wins over EnvSecret when both
	// are set.
	EnvPassword = "TINA4_SESSION_REDIS_PASSWORD"
	// EnvUsername is the Redis ACL user (default: the default user).
	EnvUsername = "TINA4_SESSION_REDIS_USERNAME"
	// EnvDB is the database number (default 0). Redis Cluster has only 0.
	EnvDB = "TINA4_SESSION_REDIS_DB"
	// EnvURL is a redis:// or rediss:// URL as go-redis's ParseURL reads
	// it. It wins over EnvHost and EnvPort.
	EnvURL = "TINA4_SESSION_REDIS_URL"
	// EnvAddrs is a comma-separated list of host:port addresses: Cluster
	// nodes when there are several, Sentinels when EnvMaster is set, or a
	// single Redis. It wins over EnvHost and EnvPort.
	EnvAddrs = "TINA4_SESSION_REDIS_ADDRS"
	// EnvMaster is the Sentinel master name; it makes EnvAddrs the
	// Sentinels' addresses.
	EnvMaster = "TINA4_SESSION_REDIS_MASTER"
	// EnvPrefix starts every key the handler writes (default
	// "tina4:session:").
	EnvPrefix = "TINA4_SESSION_REDIS_PREFIX"
	// EnvTLS set to true connects with TLS (1.2 or newer, certificates
	// checked against the system's roots).
	EnvTLS = "TINA4_SESSION_REDIS_TLS"
)

// Defaults.
const (
	// DefaultHost is the Redis host when neither EnvHost, EnvURL nor
	// EnvAddrs is set.
	DefaultHost = "localhost"
	// DefaultPort is the Redis port when EnvPort is not set.
	DefaultPort = 6379
	// DefaultPrefix starts every key unless EnvPrefix or Options.Prefix
	// says otherwise.
	DefaultPrefix = "tina4:session:"
)

// Options configures a Handler.
type Options struct {
	// Redis is the go-redis client configuration: addresses, credentials,
	// database, TLS, pool and timeouts. As redis.NewUniversalClient does,
	// a MasterName makes Addrs the Sentinels, several Addrs (or
	// IsClusterMode) make a Cluster client, and one address a plain client.
	// Nil, or no Addrs, means a plain client for localhost:6379.
	//
	// New copies it and changes the copy in two ways: it always sets
	// ContextTimeoutEnabled (so socket reads and writes stop at the host's
	// deadline), and when DialerRetries is 0 it sets 1 instead of
	// go-redis's 5, so a request fails fast while Redis is down rather
	// than dialling again for half a second.
	Redis *redis.UniversalOptions

	// Prefix starts every key: a session is stored under Prefix + id.
	// Empty means DefaultPrefix.
	Prefix string

	// Logger receives start-up reports and warnings. Nil means
	// sdk.Logger().
	Logger *slog.Logger
}

// OptionsFromEnv builds Options from the TINA4_SESSION_REDIS_* settings,
// read through getenv (os.Getenv in a plugin's main).
//
// Where Redis is:
//   - EnvURL set: the address, database and TLS come from the URL
//     (rediss:// for TLS). A user or password in the URL wins over
//     EnvUsername or EnvPassword/EnvSecret; EnvDB applies when the URL
//     names no database. EnvAddrs and EnvMaster must then be unset.
//   - EnvAddrs and EnvMaster set: Sentinel; EnvAddrs lists the Sentinels.
//   - EnvAddrs with two or more addresses: Cluster; EnvAddrs lists some or
//     all of its nodes.
//   - EnvAddrs with one address: that single Redis.
//   - otherwise: EnvHost and EnvPort.
//
// A value that cannot be used is an error naming the variable and saying
// what to do; a password never appears in it. OptionsFromEnv does not
// connect to Redis.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	get := func(key string) string { return strings.TrimSpace(getenv(key)) }

	port, err := parsePort(get(EnvPort))
	if err != nil {
		return Options{}, err
	}
	host, err := parseHost(get(EnvHost))
	if err != nil {
		return Options{}, err
	}
	db, dbSet, err := parseDB(get(EnvDB))
	if err != nil {
		return Options{}, err
	}
	useTLS, tlsSet, err := parseBool(EnvTLS, get(EnvTLS))
	if err != nil {
		return Options{}, err
	}
	addrs, err := parseAddrs(get(EnvAddrs))
	if err != nil {
		return Options{}, err
	}
	master := get(EnvMaster)
	rawURL := get(EnvURL)

	password := getenv(EnvPassword)
	if password == "" {
		password = getenv(EnvSecret)
	}
	u := &redis.UniversalOptions{Username: get(EnvUsername), Password: password, DB: db}

	switch {
	case rawURL != "":
		if len(addrs) > 0 {
			return Options{}, fmt.Errorf("%s and %s are both set: use %s for one Redis, or %s for Cluster and Sentinel, and unset the other",
				EnvURL, EnvAddrs, EnvURL, EnvAddrs)
		}
		if master != "" {
			return Options{}, fmt.Errorf("%s is set together with %s: for Sentinel, list the Sentinels in %s (host:26379,...) and unset %s",
				EnvMaster, EnvURL, EnvAddrs, EnvURL)
		}
		if err := applyURL(u, rawURL, dbSet, useTLS, tlsSet); err != nil {
			return Options{}, err
		}
	case master != "":
		if len(addrs) == 0 {
			return Options{}, fmt.Errorf("%s=%q names a Sentinel master but %s is empty: list the Sentinels' addresses there, for example %s=sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
				EnvMaster, master, EnvAddrs, EnvAddrs)
		}
		u.Addrs, u.MasterName = addrs, master
		if useTLS {
			// Each Sentinel and the master it names are checked against the
			// name they were dialled by.
			u.TLSConfig = newTLSConfig("")
		}
	case len(addrs) > 1:
		if db != 0 {
			return Options{}, fmt.Errorf("%s=%d but %s lists %d addresses, which means Redis Cluster, and Redis Cluster has only database 0: unset %s, or list a single address",
				EnvDB, db, EnvAddrs, len(addrs), EnvDB)
		}
		u.Addrs = addrs
		if useTLS {
			// Each node is checked against the name it was dialled by.
			u.TLSConfig = newTLSConfig("")
		}
	case len(addrs) == 1:
		u.Addrs = addrs
		if useTLS {
			h, _, _ := net.SplitHostPort(addrs[0])
			u.TLSConfig = newTLSConfig(h)
		}
	default:
		u.Addrs = []string{net.JoinHostPort(host, strconv.Itoa(port))}
		if useTLS {
			u.TLSConfig = newTLSConfig(host)
		}
	}

	prefix := get(EnvPrefix)
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Options{Redis: u, Prefix: prefix}, nil
}

// applyURL fills u from a redis:// or rediss:// URL with go-redis's
// ParseURL. Credentials in the URL win over those already in u; dbSet and
// the TLS setting come from the other variables and must not contradict
// the URL.
func applyURL(u *redis.UniversalOptions, rawURL string, dbSet, useTLS, tlsSet bool) error {
	const how = "use redis://[user:password@]host:port[/db] or rediss://... for TLS"
	parsed, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error repeats the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s is not a valid URL: %v; %s", EnvURL, err, how)
	}
	if parsed.Scheme != "redis" && parsed.Scheme != "rediss" {
		return fmt.Errorf("%s has scheme %q: %s (unix sockets are not supported)", EnvURL, parsed.Scheme, how)
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("%s is not a Redis URL go-redis accepts: %v; %s", EnvURL, err, how)
	}
	urlNamesDB := strings.Trim(parsed.Path, "/") != "" || parsed.Query().Has("db")
	if dbSet && urlNamesDB && u.DB != o.DB {
		return fmt.Errorf("%s=%d contradicts database %d in %s: unset %s or change the URL", EnvDB, u.DB, o.DB, EnvURL, EnvDB)
	}
	if tlsSet && !useTLS && o.TLSConfig != nil {
		return fmt.Errorf("%s=false contradicts the rediss:// scheme of %s: use redis:// for a plain connection, or unset %s", EnvTLS, EnvURL, EnvTLS)
	}

	u.Addrs = []string{o.Addr}
	if o.Username != "" {
		u.Username = o.Username
	}
	if o.Password != "" {
		u.Password = o.Password
	}
	if urlNamesDB || !dbSet {
		u.DB = o.DB
	}
	u.TLSConfig = o.TLSConfig
	if useTLS && u.TLSConfig == nil {
		h, _, _ := net.SplitHostPort(o.Addr)
		u.TLSConfig = newTLSConfig(h)
	}
	// The query parameters ParseURL understands.
	u.Protocol = o.Protocol
	u.ClientName = o.ClientName
	u.MaxRetries = o.MaxRetries
	u.MinRetryBackoff, u.MaxRetryBackoff = o.MinRetryBackoff, o.MaxRetryBackoff
	u.DialTimeout, u.ReadTimeout, u.WriteTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	u.PoolFIFO, u.PoolSize, u.PoolTimeout = o.PoolFIFO, o.PoolSize, o.PoolTimeout
	u.MinIdleConns, u.MaxIdleConns, u.MaxActiveConns = o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns
	u.MaxConcurrentDials = o.MaxConcurrentDials
	u.PipelinePoolSize = o.PipelinePoolSize
	u.PipelineReadBufferSize, u.PipelineWriteBufferSize = o.PipelineReadBufferSize, o.PipelineWriteBufferSize
	u.ConnMaxIdleTime, u.ConnMaxLifetime, u.ConnMaxLifetimeJitter = o.ConnMaxIdleTime, o.ConnMaxLifetime, o.ConnMaxLifetimeJitter
	return nil
}

// newTLSConfig is the TLS configuration EnvTLS asks for: TLS 1.2 or newer,
// the server's certificate checked against the system's roots for
// serverName (or, when it is empty, for the host name each connection
// dials).
func newTLSConfig(serverName string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
}

// parsePort reads EnvPort.
func parsePort(s string) (int, error) {
	if s == "" {
		return DefaultPort, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s=%q is not a port: use a number from 1 to 65535 (the default is %d)", EnvPort, s, DefaultPort)
	}
	return n, nil
}

// parseHost reads EnvHost.
func parseHost(s string) (string, error) {
	if s == "" {
		return DefaultHost, nil
	}
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("%s holds a URL: put URLs in %s, and only a host name or IP address in %s", EnvHost, EnvURL, EnvHost)
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return "", fmt.Errorf("%s=%q includes a port: put the host alone in %s and the port in %s", EnvHost, s, EnvHost, EnvPort)
	}
	// A bracketed IPv6 literal ([::1]) is accepted as the bare address.
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" || strings.ContainsAny(s, " \t/,@[]") {
		return "", fmt.Errorf("%s=%q is not a host name or IP address (for several addresses use %s)", EnvHost, s, EnvAddrs)
	}
	return s, nil
}

// parseDB reads EnvDB and reports whether it was set.
func parseDB(s string) (db int, set bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("%s=%q is not a database number: use a whole number from 0 (the default) to one less than the server's databases setting (16 by default)", EnvDB, s)
	}
	return n, true, nil
}

// parseBool reads a true/false setting and reports whether it was set.
func parseBool(key, s string) (value, set bool, err error) {
	switch strings.ToLower(s) {
	case "":
		return false, false, nil
	case "1", "t", "true", "yes", "y", "on":
		return true, true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s=%q is not true or false: use true to connect with TLS, or false (the default)", key, s)
}

// parseAddrs reads EnvAddrs: host:port entries separated by commas.
func parseAddrs(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s entry %q is not host:port: list addresses such as redis-1:6379,redis-2:6379 (IPv6 as [::1]:6379), separated by commas", EnvAddrs, a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s=%q lists no address: list host:port addresses separated by commas, or unset it", EnvAddrs, s)
	}
	return addrs, nil
}
