// Package redisenv reads the Redis server named by the environment, the
// same way for the command-line tool, the examples and the test harness.
//
// Two variables are read, and each takes a URL (redis://, rediss://,
// unix://) or a bare host:port:
//
//	REDIS_URL   wins when both are set: a URL can carry credentials and TLS
//	REDIS_ADDR  otherwise
//
// A command-line flag, where a program has one, wins over both.
package redisenv

import (
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The variables, in order of precedence.
const (
	EnvURL  = "REDIS_URL"
	EnvAddr = "REDIS_ADDR"
)

// Lookup returns the first of REDIS_URL and REDIS_ADDR that is set and not
// blank, and the variable's name; "" and "" when neither is.
func Lookup() (value, name string) {
	for _, name := range []string{EnvURL, EnvAddr} {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return v, name
		}
	}
	return "", ""
}

// Options parses v, a URL or a host:port, into go-redis options.
func Options(v string) (*redis.Options, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("empty Redis address")
	}
	if !strings.Contains(v, "://") {
		v = "redis://" + v
	}
	o, err := redis.ParseURL(v)
	if err != nil {
		// url.Error quotes the URL, password included.
		msg := strings.ReplaceAll(err.Error(), v, Redact(v))
		return nil, fmt.Errorf("bad Redis address %q: %s", Redact(v), msg)
	}
	return o, nil
}

// Addr returns the host:port of v, a URL or a host:port.
func Addr(v string) (string, error) {
	o, err := Options(v)
	if err != nil {
		return "", err
	}
	return o.Addr, nil
}

// Redact hides the password of a URL, for messages.
func Redact(v string) string {
	i := strings.Index(v, "://")
	if i < 0 {
		return v
	}
	at := strings.LastIndex(v, "@")
	if at < i {
		return v
	}
	userinfo := v[i+3 : at]
	if c := strings.Index(userinfo, ":"); c >= 0 {
		return v[:i+3] + userinfo[:c] + ":xxxxx" + v[at:]
	}
	return v
}
