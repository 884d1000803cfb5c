package main

import (
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/sandbox"
)

// TestConformanceReceiverResponses: with --callback-listen, `gateway
// conformance receiver` also checks the response message that the sandbox
// posts back, and fails a receiver that never answers.
func TestConformanceReceiverResponses(t *testing.T) {
	for _, tt := range []struct {
		name     string
		callback bool // the receiver posts its response to the listener
		want     int
	}{
		{"the sandbox answering", true, exitOK},
		{"a receiver that never answers", false, exitFailure},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // free for the command to listen on
			opt := sandbox.Options{CallbackToken: "t"}
			if tt.callback {
				opt.CallbackURL = "http://" + addr + "/fhir"
			}
			rc := sandbox.NewReceiver(opt)
			defer rc.Close()
			srv := httptest.NewServer(rc.Handler())
			defer srv.Close()
			out, errOut, code := runCLI(t, "conformance", "receiver", "--endpoint", srv.URL+"/fhir", "--service", "gm-student-mhs",
				"--token", "t", "--callback-listen", addr, "--callback-wait", "2s")
			if code != tt.want || !strings.Contains(out, "listening on http://"+addr+"/fhir/$process-message") {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.want, out, errOut)
			}
			mark := "PASS response-message"
			if tt.want != exitOK {
				mark = "FAIL response-message"
			}
			if !strings.Contains(out, mark) {
				t.Fatalf("no %q in\n%s", mark, out)
			}
		})
	}
}
