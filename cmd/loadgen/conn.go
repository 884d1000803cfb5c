package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// conn is one client's keep-alive HTTP/1.1 connection to the gateway. The
// load generator runs on the same two CPUs as the gateway it measures, so
// what it spends is taken from the gateway: net/http's Transport (a reader
// and a writer goroutine per connection, channels between them and the
// caller, a new Request and header map per post) cost about 0.15 ms of CPU
// a request, a tenth of the gateway's own. A conn writes each request in
// one system call from a buffer it reuses and reads the answer with
// http.ReadResponse, so the gateway sees the same requests at less cost to
// it. One goroutine uses a conn at a time.
type conn struct {
	addr    string // host:port
	host    string // the Host header
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	buf     []byte // the request being written
	body    bytes.Buffer
}

// newConn prepares a connection to target (an http:// URL); it dials on
// first use.
func newConn(target string, timeout time.Duration) (*conn, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("target %q: want http://host:port", target)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &conn{addr: addr, host: u.Host, timeout: timeout}, nil
}

// errRetry marks a failure on a kept-alive connection before any answer
// was read: the server may have closed it between requests, so the request
// is sent again once on a fresh connection, as net/http's Transport does.
var errRetry = errors.New("kept-alive connection closed")

// post sends a POST with a JSON body and returns the status and up to max
// bytes of the answer's body.
func (k *conn) post(ctx context.Context, path, auth string, body []byte, max int64) (int, []byte, error) {
	status, ans, err := k.once(ctx, path, auth, body, max)
	if errors.Is(err, errRetry) {
		status, ans, err = k.once(ctx, path, auth, body, max)
	}
	return status, ans, err
}

func (k *conn) once(ctx context.Context, path, auth string, body []byte, max int64) (int, []byte, error) {
	reused := k.c != nil
	if k.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", k.addr)
		if err != nil {
			return 0, nil, err
		}
		k.c, k.br = c, bufio.NewReaderSize(c, 16<<10)
	}
	deadline := time.Now().Add(k.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = k.c.SetDeadline(deadline)
	b := k.buf[:0]
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, k.host...)
	b = append(b, "\r\nUser-Agent: loadgen\r\nAuthorization: "...)
	b = append(b, auth...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	k.buf = b
	if _, err := k.c.Write(b); err != nil {
		k.close()
		if reused {
			return 0, nil, fmt.Errorf("%w: %v", errRetry, err)
		}
		return 0, nil, err
	}
	// A kept-alive connection that the server closed ends before the first
	// byte of an answer (ReadResponse would call that an unexpected EOF).
	if _, err := k.br.Peek(1); err != nil {
		k.close()
		if reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return 0, nil, fmt.Errorf("%w: %v", errRetry, err)
		}
		return 0, nil, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.close()
		return 0, nil, err
	}
	k.body.Reset()
	_, err = k.body.ReadFrom(io.LimitReader(resp.Body, max))
	if err == nil {
		// Whatever is left past max is read and dropped, so that the
		// connection stays usable.
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil || resp.Close {
		k.close()
	}
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, k.body.Bytes(), nil
}

func (k *conn) close() {
	if k.c != nil {
		k.c.Close()
		k.c, k.br = nil, nil
	}
}
