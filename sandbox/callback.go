package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Callback is what the sandbox keeps of one response message it posts to
// the gateway: ids, the decision and how the post went.
type Callback struct {
	// RequestID is the X-Request-Id of the referral message answered.
	RequestID string `json:"requestId"`
	// ResponseID is the response Bundle's id, also the X-Request-Id of the
	// post (the same on every retry).
	ResponseID string `json:"responseId,omitempty"`
	Accepted   bool   `json:"accepted"`
	Attempts   int    `json:"attempts"`
	// Status is the gateway's last HTTP status (0 when it did not answer).
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
	// Done is set once the post succeeded or was given up.
	Done bool `json:"done"`
}

// Callbacks lists the response messages posted or being posted, oldest
// first.
func (rc *Receiver) Callbacks() []Callback {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Callback, 0, len(rc.callbacks))
	for _, c := range rc.callbacks {
		out = append(out, *c)
	}
	return out
}

// callbackAttempts bounds how often one response message is posted.
const callbackAttempts = 5

// respond posts the response message to an accepted referral in the
// background: after the delay, and again with backoff while the gateway
// is unreachable or answers 408, 429 or 5xx.
func (rc *Receiver) respond(req request, accept bool, reason string) {
	if rc.opt.CallbackURL == "" {
		return
	}
	cb := &Callback{RequestID: req.requestID, Accepted: accept}
	rc.mu.Lock()
	rc.callbacks = append(rc.callbacks, cb)
	rc.mu.Unlock()
	body, info, err := responseTo(req.msg, req.mh, accept, reason, rc.now())
	if err != nil {
		rc.finish(cb, 0, "cannot build the response message: "+err.Error())
		rc.log.Warn("no response message", zap.String("request_id", req.requestID), zap.Error(err))
		return
	}
	rc.mu.Lock()
	cb.ResponseID = info.id
	rc.mu.Unlock()
	url := strings.TrimRight(rc.opt.CallbackURL, "/") + "/$process-message"
	rc.cbs.Add(1)
	go func() {
		defer rc.cbs.Done()
		wait := rc.opt.CallbackDelay
		for attempt := 1; ; attempt++ {
			if !sleep(rc.ctx, wait) {
				rc.finish(cb, 0, "the receiver stopped before the response was posted")
				return
			}
			status, err := rc.postResponse(url, body, info, req.correlationID)
			rc.mu.Lock()
			cb.Attempts, cb.Status = attempt, status
			rc.mu.Unlock()
			retry := err != nil || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
			switch {
			case status >= 200 && status < 300, status == http.StatusConflict:
				rc.finish(cb, status, "")
				rc.log.Info("response message posted", zap.String("request_id", req.requestID), zap.String("response_id", info.id), zap.Int("status", status))
				return
			case !retry || attempt == callbackAttempts:
				msg := fmt.Sprintf("the gateway answered %d", status)
				if err != nil {
					msg = "the gateway did not answer: " + err.Error()
				}
				rc.finish(cb, status, msg)
				rc.log.Warn("response message not taken", zap.String("request_id", req.requestID), zap.String("response_id", info.id), zap.Int("status", status))
				return
			}
			wait = 500 * time.Millisecond << (attempt - 1)
		}
	}()
}

func (rc *Receiver) finish(cb *Callback, status int, errText string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	cb.Done, cb.Error = true, errText
	if status != 0 {
		cb.Status = status
	}
}

// postResponse posts one response message with the BaRS headers a receiver
// sends back: a fresh request id per message (the same on retries), the
// referral's correlation id, the receiving organisation and the sandbox as
// software.
func (rc *Receiver) postResponse(url string, body []byte, info responseInfo, correlationID string) (int, error) {
	ctx, cancel := context.WithTimeout(rc.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+rc.opt.CallbackToken)
	req.Header.Set("X-Request-Id", info.id)
	req.Header.Set("X-Correlation-Id", correlationID)
	req.Header.Set("NHSD-End-User-Organisation", base64.StdEncoding.EncodeToString(info.receiver))
	req.Header.Set("NHSD-Requesting-Software", softwareHeader)
	resp, err := rc.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// softwareHeader is the sandbox's NHSD-Requesting-Software: base64 of a
// Device naming it. It is the same on every post, so it is encoded once.
var softwareHeader = func() string {
	dev, _ := json.Marshal(map[string]any{
		"resourceType": "Device",
		"deviceName":   []map[string]string{{"name": Software, "type": "manufacturer-name"}},
	})
	return base64.StdEncoding.EncodeToString(dev)
}()

// callbackTransport is the transport of the receiver's default callback
// client: http.DefaultTransport's, keeping up to 64 idle connections to the
// gateway instead of 2. Response messages are posted from a goroutine each,
// so in a drain many are in flight at once; with 2 kept, every other post
// would dial a connection and close it after.
func callbackTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return tr
}

// sleep waits d or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
