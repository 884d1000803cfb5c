package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/student-mh-referrals/gateway/gateway"
)

// ErrorCodeSystem is the BaRS code system of the error codes a receiver puts
// in OperationOutcome.issue.details.
const ErrorCodeSystem = "https://fhir.nhs.uk/Codesystem/http-error-codes"

// Verdict is what one answer (or failure to answer) from a receiver means
// for the message, before retry limits are applied.
type Verdict struct {
	// Result is AttemptDelivered, AttemptRetry or AttemptFailed.
	Result gateway.AttemptResult
	// Status is the HTTP status; 0 when no answer came.
	Status int
	// RetryAfter is the receiver's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Error describes a retry or failure for operators: the status and the
	// BaRS codes, or the kind of transport error. It holds no content of
	// the message or the answer.
	Error string
	// Response is the receiver's OperationOutcome when it refused the
	// message (AttemptFailed and it sent one).
	Response json.RawMessage
	// Duplicate is set when a 409 said the receiver already had the message.
	Duplicate bool
}

// Classify reads a receiver's answer. 2xx is delivered; a BaRS 409
// duplicate (REC_CONFLICT, issue code duplicate) is delivered too, because
// the receiver already holds a message with this X-Request-Id; 408, 429 and
// 5xx are retried; any other status is a refusal that retrying cannot
// change, and the receiver's OperationOutcome is kept for the operator.
// oauth2 says whether a bearer token was sent: a 401 then means the token
// expired or was revoked, so the message is retried with a new one rather
// than failed.
func Classify(status int, header http.Header, body []byte, now time.Time, oauth2 bool) Verdict {
	v := Verdict{Status: status}
	oo := readOutcome(body)
	if ra, ok := RetryAfter(header.Get("Retry-After"), now); ok {
		v.RetryAfter = ra
	}
	switch {
	case status >= 200 && status < 300:
		v.Result = gateway.AttemptDelivered
	case status == http.StatusConflict && oo.duplicate():
		v.Result, v.Duplicate = gateway.AttemptDelivered, true
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status < 600:
		v.Result = gateway.AttemptRetry
		v.Error = "receiver answered " + oo.describe(status)
	case status == http.StatusUnauthorized && oauth2:
		v.Result = gateway.AttemptRetry
		v.Error = "receiver refused the bearer token: " + oo.describe(status)
	case status >= 400 && status < 500:
		v.Result = gateway.AttemptFailed
		v.Error = "receiver refused the message: " + oo.describe(status)
		if oo.ok {
			v.Response = json.RawMessage(oo.raw)
		}
	default:
		// 1xx and 3xx: redirects are not followed (a token or the
		// message could go where it was not configured to go), and
		// neither is a verdict on the message, so try again later.
		v.Result = gateway.AttemptRetry
		v.Error = fmt.Sprintf("receiver answered an unexpected status %d", status)
	}
	return v
}

// ClassifyError reads a failure to get an answer at all: every such failure
// (timeout, refused or reset connection, TLS handshake, DNS) is retried,
// since the receiver may not have seen the message, and it will drop a
// duplicate by X-Request-Id if it did.
func ClassifyError(err error) Verdict {
	return Verdict{Result: gateway.AttemptRetry, Error: describeError(err)}
}

// describeError names the kind of transport failure without the message's
// content (a Go error can carry the URL, which is configuration, never
// personal data).
func describeError(err error) string {
	var ne net.Error
	var re *oauth2.RetrieveError
	var te *tokenError
	switch {
	case errors.As(err, &re) && re.Response != nil:
		return fmt.Sprintf("oauth2 token request refused: %d %s", re.Response.StatusCode, re.ErrorCode)
	case errors.As(err, &te):
		return "oauth2 token request failed: " + describeError(te.err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout: no answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset or closed before an answer"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return "transport error: " + msg
}

// outcome is the little of an OperationOutcome that classification needs.
type outcome struct {
	ok    bool
	raw   []byte
	issue []outcomeIssue
}

type outcomeIssue struct {
	Code    string `json:"code"`
	Details struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	} `json:"details"`
}

func readOutcome(body []byte) outcome {
	var doc struct {
		ResourceType string            `json:"resourceType"`
		Issue        []json.RawMessage `json:"issue"`
	}
	if len(body) == 0 || json.Unmarshal(body, &doc) != nil || doc.ResourceType != "OperationOutcome" {
		return outcome{}
	}
	o := outcome{ok: true, raw: body}
	for _, raw := range doc.Issue {
		var is outcomeIssue
		if json.Unmarshal(raw, &is) == nil {
			o.issue = append(o.issue, is)
		}
	}
	return o
}

// duplicate reports whether the outcome says the message was already
// processed: BaRS answers 409 REC_CONFLICT with issue code "duplicate". A
// 409 "conflict" (local data conflicts with the message) is a refusal, and
// so is the BaRS proxy's 409 BAD_REQUEST duplicate, which is about endpoint
// registrations, not messages.
func (o outcome) duplicate() bool {
	for _, is := range o.issue {
		if is.Code != "duplicate" {
			continue
		}
		bars := ""
		for _, c := range is.Details.Coding {
			if c.System == ErrorCodeSystem {
				bars = c.Code
			}
		}
		if bars == "" || bars == "REC_CONFLICT" {
			return true
		}
	}
	return false
}

// describe is the status and the outcome's codes, e.g.
// "400 REC_BAD_REQUEST (invalid)"; never its diagnostics, which may echo
// what the message carried.
func (o outcome) describe(status int) string {
	var codes []string
	for _, is := range o.issue {
		c := is.Code
		for _, d := range is.Details.Coding {
			if d.Code != "" {
				c = d.Code + " (" + is.Code + ")"
				break
			}
		}
		if c != "" {
			codes = append(codes, c)
		}
		if len(codes) == 3 {
			break
		}
	}
	s := strconv.Itoa(status)
	if len(codes) > 0 {
		s += " " + strings.Join(codes, ", ")
	}
	return s
}

// RetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). A date in the past is a zero wait.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		const maxSeconds = int64((1<<63 - 1) / int64(time.Second))
		return time.Duration(min(n, maxSeconds)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// Backoff is the wait after failed attempt n (1 for the first): base·2^(n-1)
// capped at limit, with equal jitter, a point drawn by r ∈ [0, 1) in
// [d/2, d), so that messages failing together spread out without any retry
// coming sooner than half its nominal wait. It is pure so that tests can
// pin r.
func Backoff(n int, base, limit time.Duration, r float64) time.Duration {
	if base <= 0 || limit <= 0 {
		return 0
	}
	d := min(base, limit)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	r = min(max(r, 0), 1)
	return d/2 + time.Duration(float64(d/2)*r)
}
