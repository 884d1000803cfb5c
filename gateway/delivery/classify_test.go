package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/student-mh-referrals/gateway/gateway"
)

func TestBackoff(t *testing.T) {
	const base, limit = 10 * time.Second, 30 * time.Minute
	tests := []struct {
		name  string
		n     int
		base  time.Duration
		limit time.Duration
		r     float64
		want  time.Duration
	}{
		{"first retry, least jitter", 1, base, limit, 0, 5 * time.Second},
		{"first retry, most jitter", 1, base, limit, 0.999999, 9999995 * time.Microsecond},
		{"first retry, middle", 1, base, limit, 0.5, 7500 * time.Millisecond},
		{"doubles", 2, base, limit, 0, 10 * time.Second},
		{"doubles again", 3, base, limit, 0, 20 * time.Second},
		{"eighth", 8, base, limit, 0, 640 * time.Second},
		{"capped", 9, base, limit, 0, 15 * time.Minute},
		{"capped, most jitter", 9, base, limit, 1, 30 * time.Minute},
		{"far beyond the cap", 1000, base, limit, 0.5, 22*time.Minute + 30*time.Second},
		{"attempt zero is the first", 0, base, limit, 0, 5 * time.Second},
		{"base above the cap", 1, time.Hour, limit, 0, 15 * time.Minute},
		{"r below range", 1, base, limit, -3, 5 * time.Second},
		{"r above range", 1, base, limit, 7, 10 * time.Second},
		{"no base", 3, 0, limit, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(tt.n, tt.base, tt.limit, tt.r); got != tt.want {
				t.Errorf("Backoff(%d, %s, %s, %v) = %s, want %s", tt.n, tt.base, tt.limit, tt.r, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"absent", "", 0, false},
		{"seconds", "120", 2 * time.Minute, true},
		{"zero", "0", 0, true},
		{"padded", " 7 ", 7 * time.Second, true},
		{"negative", "-5", 0, false},
		{"huge", "99999999999999999", time.Duration(1<<63 - 1).Truncate(time.Second), true},
		{"HTTP date", "Wed, 21 Oct 2026 07:30:30 GMT", 150 * time.Second, true},
		{"RFC 850 date", "Wednesday, 21-Oct-26 07:29:00 GMT", time.Minute, true},
		{"date in the past", "Wed, 21 Oct 2026 07:00:00 GMT", 0, true},
		{"garbage", "soon", 0, false},
		{"fraction", "1.5", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RetryAfter(tt.value, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("RetryAfter(%q) = %s, %v; want %s, %v", tt.value, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// outcomeJSON is a BaRS OperationOutcome with one issue.
func outcomeJSON(issue, barsCode string) string {
	details := ""
	if barsCode != "" {
		details = fmt.Sprintf(`,"details":{"coding":[{"system":%q,"code":%q}]}`, ErrorCodeSystem, barsCode)
	}
	return fmt.Sprintf(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q%s,"diagnostics":"the patient Alexandra Testperson was already referred"}]}`, issue, details)
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		oauth2     bool
		want       gateway.AttemptResult
		duplicate  bool
		keep       bool   // the OperationOutcome is kept
		errHas     string // Error contains
		wait       time.Duration
	}{
		{"200", 200, "", `{"resourceType":"OperationOutcome","issue":[]}`, false, gateway.AttemptDelivered, false, false, "", 0},
		{"202 without a body", 202, "", "", false, gateway.AttemptDelivered, false, false, "", 0},
		{"409 duplicate", 409, "", outcomeJSON("duplicate", "REC_CONFLICT"), false, gateway.AttemptDelivered, true, false, "", 0},
		{"409 duplicate without BaRS code", 409, "", outcomeJSON("duplicate", ""), false, gateway.AttemptDelivered, true, false, "", 0},
		{"409 conflict", 409, "", outcomeJSON("conflict", "REC_CONFLICT"), false, gateway.AttemptFailed, false, true, "409 REC_CONFLICT (conflict)", 0},
		{"409 proxy endpoint duplicate", 409, "", outcomeJSON("duplicate", "BAD_REQUEST"), false, gateway.AttemptFailed, false, true, "409 BAD_REQUEST", 0},
		{"409 without a body", 409, "", "", false, gateway.AttemptFailed, false, false, "409", 0},
		{"400 with OperationOutcome", 400, "", outcomeJSON("value", "REC_BAD_REQUEST"), false, gateway.AttemptFailed, false, true, "400 REC_BAD_REQUEST (value)", 0},
		{"422", 422, "", outcomeJSON("business-rule", "REC_UNPROCESSABLE_ENTITY"), false, gateway.AttemptFailed, false, true, "422", 0},
		{"400 with HTML", 400, "", "<html>bad</html>", false, gateway.AttemptFailed, false, false, "400", 0},
		{"401 without OAuth2", 401, "", outcomeJSON("forbidden", "REC_UNAUTHORIZED"), false, gateway.AttemptFailed, false, true, "401", 0},
		{"401 with OAuth2", 401, "", outcomeJSON("forbidden", "REC_UNAUTHORIZED"), true, gateway.AttemptRetry, false, false, "bearer token", 0},
		{"403", 403, "", outcomeJSON("forbidden", "REC_FORBIDDEN"), true, gateway.AttemptFailed, false, true, "403", 0},
		{"408", 408, "", outcomeJSON("timeout", "REC_TIMEOUT"), false, gateway.AttemptRetry, false, false, "408 REC_TIMEOUT", 0},
		{"429 with seconds", 429, "30", outcomeJSON("throttled", "REC_TOO_MANY_REQUESTS"), false, gateway.AttemptRetry, false, false, "429", 30 * time.Second},
		{"503 with a date", 503, "Wed, 21 Oct 2026 07:33:00 GMT", "", false, gateway.AttemptRetry, false, false, "503", 5 * time.Minute},
		{"500", 500, "", outcomeJSON("exception", "REC_SERVER_ERROR"), false, gateway.AttemptRetry, false, false, "500 REC_SERVER_ERROR (exception)", 0},
		{"599", 599, "", "", false, gateway.AttemptRetry, false, false, "599", 0},
		{"redirect", 307, "", "", false, gateway.AttemptRetry, false, false, "unexpected status 307", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			v := Classify(tt.status, h, []byte(tt.body), now, tt.oauth2)
			if v.Result != tt.want || v.Duplicate != tt.duplicate || v.Status != tt.status || v.RetryAfter != tt.wait {
				t.Errorf("verdict %+v, want %s duplicate=%v wait=%s", v, tt.want, tt.duplicate, tt.wait)
			}
			if (v.Response != nil) != tt.keep || (tt.keep && string(v.Response) != tt.body) {
				t.Errorf("response %s, keep=%v", v.Response, tt.keep)
			}
			if !strings.Contains(v.Error, tt.errHas) {
				t.Errorf("error %q, want it to mention %q", v.Error, tt.errHas)
			}
			if strings.Contains(v.Error, "Testperson") {
				t.Errorf("error %q repeats the receiver's diagnostics", v.Error)
			}
		})
	}
}

func TestClassifyError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"deadline", context.DeadlineExceeded, "timeout"},
		{"io timeout", &url.Error{Op: "Post", URL: "https://x", Err: os.ErrDeadlineExceeded}, "timeout"},
		{"refused", &url.Error{Op: "Post", URL: "https://x", Err: syscall.ECONNREFUSED}, "connection refused"},
		{"reset", &url.Error{Op: "Post", URL: "https://x", Err: syscall.ECONNRESET}, "connection reset"},
		{"eof", &url.Error{Op: "Post", URL: "https://x", Err: io.EOF}, "connection reset or closed"},
		{"token refused", &tokenError{&oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, ErrorCode: "invalid_client"}}, "oauth2 token request refused: 401 invalid_client"},
		{"token endpoint down", &tokenError{&url.Error{Op: "Post", URL: "https://x", Err: syscall.ECONNREFUSED}}, "oauth2 token request failed: connection refused"},
		{"other", errors.New(strings.Repeat("x", 500)), "transport error: xxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ClassifyError(tt.err)
			if v.Result != gateway.AttemptRetry || !strings.HasPrefix(v.Error, tt.want) || len(v.Error) > 340 {
				t.Errorf("verdict %+v, want a retry described as %q…", v, tt.want)
			}
		})
	}
}
