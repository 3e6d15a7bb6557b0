package redisenv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLookupPrecedence(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Setenv(EnvAddr, "")
	v, name := Lookup()
	require.Empty(t, v)
	require.Empty(t, name)

	t.Setenv(EnvAddr, " 10.0.0.1:6380 ")
	v, name = Lookup()
	require.Equal(t, "10.0.0.1:6380", v)
	require.Equal(t, EnvAddr, name)

	t.Setenv(EnvURL, "redis://10.0.0.2:6381/0")
	v, name = Lookup()
	require.Equal(t, "redis://10.0.0.2:6381/0", v)
	require.Equal(t, EnvURL, name)
}

func TestOptions(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:6390":               "127.0.0.1:6390",
		"redis://127.0.0.1:6390":       "127.0.0.1:6390",
		"redis://u:secret@host:7000/2": "host:7000",
		"rediss://host:6380":           "host:6380",
		"localhost":                    "localhost:6379",
	} {
		got, err := Addr(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	o, err := Options("redis://u:secret@host:7000/2")
	require.NoError(t, err)
	require.Equal(t, "u", o.Username)
	require.Equal(t, "secret", o.Password)
	require.Equal(t, 2, o.DB)
	_, err = Options("")
	require.Error(t, err)
	_, err = Options("redis://u:secret@host:notaport")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
	require.Equal(t, "redis://u:xxxxx@h:1", Redact("redis://u:secret@h:1"))
	require.Equal(t, "h:1", Redact("h:1"))
}
