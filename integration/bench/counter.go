package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"time"
)

// cmdCounter counts, client-side, the commands every workload connection
// sends, by parsing the RESP requests written to the socket. Redis's own
// commandstats cannot tell a command sent by a client from one a script
// ran, and the engine's readers use connections the benchmark never sees
// (they copy the client's options, dialer included), so counting on the
// wire is the one way to get the top-level commands (round trips).
type cmdCounter struct {
	mu     sync.Mutex
	byName map[string]int64
	writes int64
}

func newCmdCounter() *cmdCounter { return &cmdCounter{byName: map[string]int64{}} }

// dialer returns a redis.Options.Dialer whose connections report to c.
func (c *cmdCounter) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, c: c}, nil
	}
}

// snapshot returns the commands counted so far, by lower-case name, and the
// number of socket writes (one per round trip: go-redis flushes a command or
// a pipeline at once).
func (c *cmdCounter) snapshot() (map[string]int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.byName))
	for k, v := range c.byName {
		m[k] = v
	}
	return m, c.writes
}

type countingConn struct {
	net.Conn
	c *cmdCounter
	p respParser
}

func (cc *countingConn) Write(b []byte) (int, error) {
	names := cc.p.feed(b)
	cc.c.mu.Lock()
	cc.c.writes++
	for _, n := range names {
		cc.c.byName[n]++
	}
	cc.c.mu.Unlock()
	return cc.Conn.Write(b)
}

// respParser follows a stream of RESP requests (arrays of bulk strings,
// the only form go-redis sends) across writes and yields each command's
// name once the command is complete.
type respParser struct {
	state   int // 0 array header, 1 bulk header, 2 bulk data, 3 bulk CRLF
	num     []byte
	left    int // bulks left in the array
	dataLen int // bytes left in the current bulk
	idx     int // index of the current bulk in the array
	name    []byte
}

func (p *respParser) feed(b []byte) []string {
	var out []string
	for len(b) > 0 {
		switch p.state {
		case 0, 1:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				p.num = append(p.num, b...)
				return out
			}
			p.num = append(p.num, b[:i+1]...)
			b = b[i+1:]
			line := strings.TrimSpace(string(p.num))
			p.num = p.num[:0]
			if len(line) < 2 {
				continue
			}
			n := atoi(line[1:])
			if p.state == 0 {
				p.left, p.idx, p.name = n, 0, p.name[:0]
				if n > 0 {
					p.state = 1
				}
				continue
			}
			p.dataLen, p.state = n, 2
		case 2:
			k := min(p.dataLen, len(b))
			if p.idx == 0 && len(p.name) < 32 {
				p.name = append(p.name, b[:min(k, 32-len(p.name))]...)
			}
			p.dataLen -= k
			b = b[k:]
			if p.dataLen == 0 {
				p.state, p.dataLen = 3, 2
			}
		case 3:
			k := min(p.dataLen, len(b))
			p.dataLen -= k
			b = b[k:]
			if p.dataLen > 0 {
				continue
			}
			p.idx++
			p.left--
			if p.left > 0 {
				p.state = 1
				continue
			}
			p.state = 0
			out = append(out, strings.ToLower(string(p.name)))
		}
	}
	return out
}

func atoi(s string) int {
	n := 0
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return n
		}
		n = n*10 + int(ch-'0')
	}
	return n
}
