package faults_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// securityDoc is the page whose ACL lines the tests apply, so that what
// operators copy is what was tested.
const securityDoc = "../../docs/security.md"

// aclLine returns the ACL SETUSER command documented after the marker
// <!-- acl:name --> in docs/security.md, with its placeholders filled.
func aclLine(t *testing.T, name, user, password, prefix string) []any {
	t.Helper()
	f, err := os.Open(securityDoc)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	marker := "<!-- acl:" + name + " -->"
	found := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == marker {
			found = true
			continue
		}
		if found && strings.HasPrefix(line, "ACL SETUSER ") {
			line = strings.NewReplacer("<user>", user, "<password>", password, "<prefix>", prefix).Replace(line)
			var args []any
			for _, f := range strings.Fields(line) {
				args = append(args, f)
			}
			return args
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("%s: no ACL SETUSER line after %s", securityDoc, marker)
	return nil
}

// aclTarget is where the ACL test creates its users: every master of a
// deployment, through an admin connection each.
type aclTarget struct {
	admins  []*redis.Client
	connect func(user, password string) redis.UniversalClient
}

func (a aclTarget) do(ctx context.Context, t *testing.T, args ...any) {
	t.Helper()
	for _, c := range a.admins {
		require.NoError(t, c.Do(ctx, args...).Err(), "%v on %s", args, c.Options().Addr)
	}
}

// snapshot DUMPs every key of prefix on every master.
func (a aclTarget) snapshot(ctx context.Context, t *testing.T, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range a.admins {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			v, err := c.Dump(ctx, iter.Val()).Result()
			require.NoError(t, err)
			out[iter.Val()] = v
		}
		require.NoError(t, iter.Err())
	}
	return out
}

// TestACLUsers creates the two Redis users docs/security.md documents and
// checks that the library works under the first one (every feature,
// including a reconnect), that it cannot reach keys outside its prefix,
// and that the read-only user (the CLI's inspection commands) reads
// everything and can change nothing. On a private standalone server and on
// the shared cluster (with users named after the test's prefix, removed at
// cleanup).
func TestACLUsers(t *testing.T) {
	t.Parallel()
	for _, name := range []string{redistest.NameStandalone, redistest.NameCluster} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var target aclTarget
			var prefix string
			if name == redistest.NameCluster {
				b := redistest.Cluster(t)
				prefix = b.Prefix
				addrs, err := b.MasterAddrs(ctx)
				require.NoError(t, err)
				for _, addr := range addrs {
					c := redis.NewClient(&redis.Options{Addr: addr})
					t.Cleanup(func() { _ = c.Close() })
					target.admins = append(target.admins, c)
				}
				target.connect = func(user, password string) redis.UniversalClient {
					c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs, Username: user, Password: password})
					t.Cleanup(func() { _ = c.Close() })
					return c
				}
			} else {
				srv := redistest.NewServer(t, redistest.ServerOptions{})
				prefix = "aclapp"
				target.admins = []*redis.Client{srv.Client(t)}
				target.connect = func(user, password string) redis.UniversalClient {
					c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: password})
					t.Cleanup(func() { _ = c.Close() })
					return c
				}
			}
			lib, ro := "sf-"+prefix, "sf-ro-"+prefix
			const password = "correct-horse-battery"
			target.do(ctx, t, aclLine(t, "library", lib, password, prefix)...)
			target.do(ctx, t, aclLine(t, "readonly", ro, password, prefix)...)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for _, c := range target.admins {
					_ = c.Do(ctx, "acl", "deluser", lib, ro).Err()
				}
			})

			target.do(ctx, t, "acl", "log", "reset")
			// The library, everything it does, under its user.
			libClient := target.connect(lib, password)
			libraryWorkload(ctx, t, libClient, prefix, func() { target.do(ctx, t, "client", "kill", "user", lib) })
			// The operators' transitions need nothing more than the library.
			adminWorkload(ctx, t, libClient, prefix)
			// WAIT is allowed: with no replica it times out instead of NOPERM.
			wq := newQueue(t, libClient, queue.Options{Prefix: prefix, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
			_, err := wq.Send(ctx, "acl-room", []byte("waited"))
			require.ErrorIs(t, err, queue.ErrNotReplicated)
			// Not one command was refused, not even one whose error the
			// library would have swallowed.
			for _, c := range target.admins {
				entries, err := c.ACLLog(ctx, 100).Result()
				require.NoError(t, err)
				for _, e := range entries {
					require.NotEqual(t, lib, e.Username, "refused: %+v", e)
				}
			}
			// Nothing outside its prefix.
			require.True(t, isNoPerm(libClient.Set(ctx, "elsewhere:key", "x", 0).Err()))
			require.True(t, isNoPerm(libClient.Get(ctx, "elsewhere:key").Err()))
			_, err = queue.New(ctx, libClient, queue.Options{Prefix: "elsewhere"})
			require.True(t, isNoPerm(err), "a Queue under another prefix: %v", err)
			require.True(t, isNoPerm(libClient.FlushAll(ctx).Err()))

			// The read-only user reads everything the CLI shows...
			roClient := target.connect(ro, password)
			rq := readOnlyWorkload(ctx, t, roClient, prefix, "acl-room")
			// ...and changes nothing.
			sub, err := queue.New(ctx, libClient, queue.Options{Prefix: prefix, Logger: discardLogger()})
			require.NoError(t, err)
			defer sub.Close()
			s, err := sub.Join(ctx, "acl-ro-room")
			require.NoError(t, err)
			_, err = sub.Send(ctx, "acl-ro-room", []byte("m"))
			require.NoError(t, err)
			m, err := s.Next(ctx)
			require.NoError(t, err)
			// A paused room, so that the read-only user's Resume gets as far
			// as its first write.
			_, err = sub.Send(ctx, "acl-ro-paused", []byte("m"))
			require.NoError(t, err)
			require.NoError(t, sub.Admin("ops").Pause(ctx, "acl-ro-paused", ""))
			roAdmin := rq.Admin("intruder")
			before := target.snapshot(ctx, t, prefix)
			writes := map[string]func() error{
				"Send":              func() error { _, err := rq.Send(ctx, "acl-room", []byte("x")); return err },
				"SendOutOfBand":     func() error { _, err := rq.SendOutOfBand(ctx, "acl-room", []byte("x")); return err },
				"CreateClientID":    func() error { _, err := rq.CreateClientID(ctx); return err },
				"Subscribe":         func() error { return rq.Subscribe(ctx, "intruder", "acl-room") },
				"SubscribeObserver": func() error { return rq.SubscribeObserver(ctx, "intruder", "acl-room") },
				"Unsubscribe":       func() error { return rq.Unsubscribe(ctx, s.ClientID(), "acl-ro-room") },
				"Ping":              func() error { return rq.Ping(ctx, s.ClientID()) },
				"Ack":               func() error { return rq.Ack(ctx, s.ClientID(), m.AckToken) },
				"Join":              func() error { _, err := rq.Join(ctx, "acl-room"); return err },
				"raw DEL":           func() error { return roClient.Del(ctx, prefix+":x").Err() },
				"Admin.Pause":       func() error { return roAdmin.Pause(ctx, "acl-ro-room", "") },
				"Admin.Resume":      func() error { return roAdmin.Resume(ctx, "acl-ro-paused", "") },
				"Admin.Purge": func() error {
					_, err := roAdmin.Purge(ctx, "acl-ro-room", queue.PurgeFilter{}, "")
					return err
				},
				"Admin.Purge up to": func() error {
					_, err := roAdmin.Purge(ctx, "acl-ro-paused", queue.PurgeFilter{UpTo: "1"}, "")
					return err
				},
				"Admin.Release":    func() error { _, err := roAdmin.Release(ctx, "acl-ro-room", ""); return err },
				"Admin.Kick":       func() error { return roAdmin.Kick(ctx, "acl-ro-room", s.ClientID(), "") },
				"Admin.DeleteRoom": func() error { return roAdmin.DeleteRoom(ctx, "acl-ro-room", "") },
				"raw XADD": func() error {
					return roClient.XAdd(ctx, &redis.XAddArgs{Stream: prefix + ":x", Values: []any{"t", "m"}}).Err()
				},
			}
			for what, call := range writes {
				err := call()
				require.True(t, isNoPerm(err), "%s by the read-only user: %v", what, err)
			}
			require.Empty(t, keyspaceChanges(before, target.snapshot(ctx, t, prefix)), "the read-only user changed keys")
			require.NoError(t, m.Ack(ctx))
			require.NoError(t, s.Close(ctx))
		})
	}
}

func keyspaceChanges(before, after map[string]string) []string {
	var out []string
	for k, v := range before {
		if after[k] != v {
			out = append(out, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "syncfanout test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate (PEM) and its key (PEM) signed by the CA.
func (ca *testCA) issue(t *testing.T, serial int64, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestTLS runs the library over TLS with client certificates: a private
// redis-server listens on a tls-port with certificates made by the test,
// go-redis connects with a TLSConfig, and every feature works. A client
// without a certificate, or one that does not trust the server's CA, is
// refused.
func TestTLS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca := newTestCA(t)
	serverCert, serverKey := ca.issue(t, 2, "redis-server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, 3, "syncfanout", x509.ExtKeyUsageClientAuth)
	files := map[string][]byte{"ca.crt": ca.pem, "server.crt": serverCert, "server.key": serverKey}
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	port, err := redistest.FreePort()
	require.NoError(t, err)
	srv := redistest.NewServer(t, redistest.ServerOptions{Args: []string{
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
		"--tls-auth-clients", "yes",
	}})
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(ca.pem))
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	require.NoError(t, err)
	connect := func(cfg *tls.Config) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: tlsAddr, TLSConfig: cfg, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	rdb := connect(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}})
	admin := srv.Client(t) // the plain port, to drop the TLS connections
	libraryWorkload(ctx, t, rdb, "tls", func() {
		require.NoError(t, admin.Do(ctx, "client", "kill", "laddr", tlsAddr).Err())
	})
	info, err := admin.ClientList(ctx).Result()
	require.NoError(t, err)
	require.Contains(t, info, "laddr="+tlsAddr, "the library's connections went to the TLS port")

	require.Error(t, connect(&tls.Config{RootCAs: roots}).Ping(ctx).Err(), "a client without a certificate")
	require.Error(t, connect(&tls.Config{Certificates: []tls.Certificate{pair}}).Ping(ctx).Err(), "a client that does not trust the server")
	plain := redis.NewClient(&redis.Options{Addr: tlsAddr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	defer plain.Close()
	require.Error(t, plain.Ping(ctx).Err(), "plain TCP on the TLS port")
}
