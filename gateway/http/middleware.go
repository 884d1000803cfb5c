package http

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

type requestIDKey struct{}

type loggerKey struct{}

// logFrom returns the logger of the request being served (withRequest's,
// which names the request), or a no-op logger.
func logFrom(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}

// RequestID returns the id of the request being served.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// clientRequestID is what a caller's X-Request-Id must look like to be kept;
// anything else (too long, header injection attempts) is replaced.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withRequest gives every request an id (the caller's X-Request-Id when it is
// sane), a logger that names it, an access log line, and recovery from
// panics as a 500 OperationOutcome.
func withRequest(base *zap.Logger, obs Observer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !clientRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		log := base.With(zap.String("request_id", id))
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		r = r.WithContext(context.WithValue(ctx, loggerKey{}, log))
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w, route: "unmatched", status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic serving request", zap.String("panic", fmt.Sprint(p)), zap.ByteString("stack", debug.Stack()))
				if !rec.wrote {
					Error(rec, r, gateway.Internal(fmt.Errorf("panic: %v", p)))
				}
			}
			obs.ObserveRequest(rec.route, r.Method, rec.status, time.Since(start))
			log.Info("request",
				zap.String("method", r.Method),
				zap.String("route", rec.route),
				zap.Int("status", rec.status),
				zap.Int64("bytes", rec.bytes),
				zap.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

// recordRoute is router middleware that notes the matched route template
// in withRequest's recorder.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*statusRecorder); ok {
			if m := mux.CurrentRoute(r); m != nil {
				if t, err := m.GetPathTemplate(); err == nil {
					rec.route = t
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers what was written, and the route, for the access
// log and the metrics.
type statusRecorder struct {
	http.ResponseWriter
	// route is the matched route template; unmatched paths stay
	// "unmatched" so that a scan of random URLs cannot blow up the metrics'
	// label space.
	route  string
	status int
	bytes  int64
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// inFlight bounds how many intake requests (submissions and dry runs) run at
// once, so that a burst after an outage is refused cleanly with 503 and
// Retry-After instead of queueing inside the gateway until latency and
// memory run away. A university's system retries, and a repeated submission
// is idempotent. max ≤ 0 means no bound.
func inFlight(max int) func(http.HandlerFunc) http.HandlerFunc {
	if max <= 0 {
		return func(h http.HandlerFunc) http.HandlerFunc { return h }
	}
	slots := make(chan struct{}, max)
	return func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				h(w, r)
			default:
				w.Header().Set("Retry-After", "1")
				Error(w, r, gateway.Errorf(gateway.EUNAVAILABLE, "the gateway is taking in as many referrals as it can at once: retry after a second"))
			}
		}
	}
}
