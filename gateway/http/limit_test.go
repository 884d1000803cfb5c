package http

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestInFlight: with every slot taken, an intake request is refused at once
// with 503, Retry-After and an OperationOutcome; once a slot frees, the next
// one is served.
func TestInFlight(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	h := inFlight(2)(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
		w.WriteHeader(http.StatusAccepted)
	})
	var done sync.WaitGroup
	for range 2 {
		done.Add(1)
		go func() {
			defer done.Done()
			h(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/referrals", nil))
		}()
	}
	entered.Wait() // both slots are held
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/v1/referrals", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("a third request at once: %d, Retry-After %q; want 503 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := rec.Header().Get("Content-Type"); got != MediaFHIRJSON+"; charset=utf-8" && got != MediaFHIRJSON {
		t.Errorf("Content-Type %q: want an OperationOutcome", got)
	}
	close(release)
	done.Wait()
	entered.Add(1) // the handler counts down once more; release is closed
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/v1/referrals", nil))
	if rec.Code != http.StatusAccepted {
		t.Errorf("after the others finished: %d, want 202", rec.Code)
	}
}

// TestInFlightUnbounded: 0 leaves the handler as it is.
func TestInFlightUnbounded(t *testing.T) {
	called := false
	inFlight(0)(func(http.ResponseWriter, *http.Request) { called = true })(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))
	if !called {
		t.Error("the handler was not called")
	}
}
