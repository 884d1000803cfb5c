package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestConn: the load generator's own HTTP/1.1 client keeps its connection
// alive, sends what net/http would, survives a server that closes between
// or after requests, and reads past an answer longer than it keeps.
func TestConn(t *testing.T) {
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer t" ||
			r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(b)):
			w.WriteHeader(http.StatusBadRequest)
		case r.URL.Path == "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Path == "/long":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(strings.Repeat("x", 100_000)))
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write(b)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	ctx := context.Background()
	k, err := newConn(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	post := func(t *testing.T, path, body string, want int) []byte {
		t.Helper()
		status, ans, err := k.post(ctx, path, "Bearer t", []byte(body), 64<<10)
		if err != nil || status != want {
			t.Fatalf("POST %s: status %d, %v; want %d", path, status, err, want)
		}
		return ans
	}
	t.Run("keeps the connection alive", func(t *testing.T) {
		for i := range 50 {
			body := `{"n":` + strings.Repeat("1", i+1) + `}`
			if got := string(post(t, "/v1/referrals", body, http.StatusAccepted)); got != body {
				t.Fatalf("answer %q, want the body echoed", got)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d connections for 50 posts, want 1", n)
		}
	})
	t.Run("an answer longer than kept is read past", func(t *testing.T) {
		if got := post(t, "/long", "{}", http.StatusOK); len(got) != 64<<10 {
			t.Errorf("kept %d bytes, want %d", len(got), 64<<10)
		}
		post(t, "/v1/referrals", "{}", http.StatusAccepted)
	})
	t.Run("Connection: close", func(t *testing.T) {
		before := dials.Load()
		post(t, "/close", "{}", http.StatusAccepted)
		post(t, "/v1/referrals", "{}", http.StatusAccepted)
		if n := dials.Load() - before; n != 1 {
			t.Errorf("%d new connections after a close, want 1", n)
		}
	})
	t.Run("the server closes the idle connection", func(t *testing.T) {
		srv.CloseClientConnections()
		post(t, "/v1/referrals", "{}", http.StatusAccepted)
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		k, err := newConn("http://"+addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := k.post(ctx, "/", "Bearer t", nil, 10); err == nil {
			t.Fatal("no error from a closed port")
		}
	})
	t.Run("only http URLs", func(t *testing.T) {
		for _, u := range []string{"https://127.0.0.1:1", "127.0.0.1:1", "http://"} {
			if _, err := newConn(u, time.Second); err == nil {
				t.Errorf("%q accepted", u)
			}
		}
	})
}
