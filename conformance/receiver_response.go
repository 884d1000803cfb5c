package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// BaRSEventSystem is the BaRS code system of message events, and
// EventResponse the event of a receiver's asynchronous answer to a
// referral.
const (
	BaRSEventSystem = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	EventResponse   = "servicerequest-response"
)

// ResponseHeaders are the headers a receiver's response message must carry
// when it posts it to the sender's $process-message, as the sender's
// messages carry them: its own request id, the referral's correlation id,
// who it is sent for and by what software.
var ResponseHeaders = []string{
	"X-Request-Id",
	"X-Correlation-Id",
	"NHSD-End-User-Organisation",
	"NHSD-Requesting-Software",
}

// Callbacks collects the response messages a receiver posts back: its
// Handler serves the $process-message that `gateway conformance receiver
// --callback-listen` listens on, in place of the gateway's.
type Callbacks struct {
	mu     sync.Mutex
	got    []Callback
	notify chan struct{}
}

// Callback is one post a receiver made to the callback address.
type Callback struct {
	Path   string
	Header http.Header
	Body   []byte
}

// NewCallbacks is an empty collection.
func NewCallbacks() *Callbacks { return &Callbacks{notify: make(chan struct{}, 1)} }

// Handler takes every POST to a path ending in /$process-message and
// answers 200 with an informational OperationOutcome, as a sender that took
// the response would; anything else is a 404.
func (c *Callbacks) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/$process-message") {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAnswer))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, Callback{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"response message received by the conformance suite"}]}`))
	})
}

// wait returns the posts received, once there is at least one or when ctx
// ends.
func (c *Callbacks) wait(ctx context.Context) []Callback {
	for {
		c.mu.Lock()
		got := slices.Clone(c.got)
		c.mu.Unlock()
		if len(got) > 0 {
			return got
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.notify:
		}
	}
}

// responseMessage checks the receiver's asynchronous answer to the
// accepted referral: it waits (up to Receiver.CallbackWait) for a post to
// the callback address and judges the one that names the request (or the
// first, when none does).
func (p *poster) responseMessage() Case {
	var c Case
	if p.first == nil {
		c.Status, c.Reason = Skip, "the first message was not accepted, so no response message is due"
		return c
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.callbackWait)
	defer cancel()
	got := p.callbacks.wait(ctx)
	cs := (*checks)(&c.Checks)
	cs.add(fmt.Sprintf("a response message was posted back within %s", p.callbackWait), len(got) > 0,
		"nothing was posted to the callback address; configure the receiver to answer to it")
	if len(got) == 0 {
		return c
	}
	req := readRequest(p.first.body)
	cb := got[0]
	for _, g := range got {
		if slices.Contains(req.ids(), readResponse(g.Body).identifier) {
			cb = g
			break
		}
	}
	checkResponse(cs, cb, req, p.first.header.Get("X-Correlation-Id"))
	res := p.validator.Validate(cb.Body)
	cs.add("the response message is valid FHIR R4 (built-in rules)", res.OK(), errorsText(res))
	return c
}

// request is what a response must refer to in the referral sent.
type request struct {
	bundleID, headerID string
	// source is the request's MessageHeader.source.endpoint, where the
	// response is addressed.
	source string
	// srIdentifiers are the ServiceRequest's identifiers, system|value.
	srIdentifiers []string
}

func (r request) ids() []string { return []string{r.bundleID, r.headerID} }

// message is the part of a BaRS message Bundle the checks read.
type message struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type resource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Identifier   []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	EventCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	} `json:"eventCoding"`
	Response *struct {
		Identifier string `json:"identifier"`
		Code       string `json:"code"`
	} `json:"response"`
	Focus []struct {
		Reference string `json:"reference"`
	} `json:"focus"`
	Sender *struct {
		Reference string `json:"reference"`
	} `json:"sender"`
	Source struct {
		Endpoint string `json:"endpoint"`
	} `json:"source"`
	Destination []struct {
		Endpoint string `json:"endpoint"`
	} `json:"destination"`
}

// resolve is the entry whose fullUrl is ref.
func (m message) resolve(ref string) (resource, bool) {
	for _, e := range m.Entry {
		if e.FullURL == ref && ref != "" {
			var r resource
			return r, json.Unmarshal(e.Resource, &r) == nil
		}
	}
	return resource{}, false
}

// header is the first entry, when it is a MessageHeader.
func (m message) header() (resource, bool) {
	if len(m.Entry) == 0 {
		return resource{}, false
	}
	var r resource
	if json.Unmarshal(m.Entry[0].Resource, &r) != nil || r.ResourceType != "MessageHeader" {
		return resource{}, false
	}
	return r, true
}

func readRequest(body []byte) request {
	var m message
	_ = json.Unmarshal(body, &m)
	out := request{bundleID: m.ID}
	if mh, ok := m.header(); ok {
		out.headerID, out.source = mh.ID, mh.Source.Endpoint
		if len(mh.Focus) > 0 {
			if sr, ok := m.resolve(mh.Focus[0].Reference); ok {
				for _, id := range sr.Identifier {
					out.srIdentifiers = append(out.srIdentifiers, id.System+"|"+id.Value)
				}
			}
		}
	}
	return out
}

// response is what checkResponse reads of a response message.
type response struct {
	msg        message
	mh         resource
	isHeader   bool
	identifier string
}

func readResponse(body []byte) response {
	var r response
	_ = json.Unmarshal(body, &r.msg)
	r.mh, r.isHeader = r.msg.header()
	if r.mh.Response != nil {
		r.identifier = r.mh.Response.Identifier
	}
	return r
}

// responseCodes are MessageHeader.response.code's values (FHIR R4
// ResponseType, a required binding).
var responseCodes = []string{"ok", "transient-error", "fatal-error"}

// checkResponse checks one response message against the request it
// answers, as the BaRS API description and its servicerequest-response
// example have it.
func checkResponse(cs *checks, cb Callback, req request, correlationID string) {
	mt, _, _ := mime.ParseMediaType(cb.Header.Get("Content-Type"))
	cs.add("posted as application/fhir+json", mt == "application/fhir+json", "Content-Type "+cb.Header.Get("Content-Type"))
	var missing []string
	for _, h := range ResponseHeaders {
		if cb.Header.Get(h) == "" {
			missing = append(missing, h)
		}
	}
	cs.add("the post carries "+strings.Join(ResponseHeaders, ", "), len(missing) == 0, "missing "+strings.Join(missing, ", "))
	if got := cb.Header.Get("X-Correlation-Id"); got != "" {
		cs.add("X-Correlation-Id is the referral's", got == correlationID, "got "+got+", the referral was sent with "+correlationID)
	}
	r := readResponse(cb.Body)
	cs.add("a Bundle of type message", r.msg.ResourceType == "Bundle" && r.msg.Type == "message",
		fmt.Sprintf("resourceType %q, type %q", r.msg.ResourceType, r.msg.Type))
	cs.add("the first entry is the MessageHeader", r.isHeader, "it is not")
	if !r.isHeader {
		return
	}
	ev := r.mh.EventCoding
	cs.add("MessageHeader.eventCoding is "+BaRSEventSystem+"|"+EventResponse, ev.System == BaRSEventSystem && ev.Code == EventResponse,
		"got "+ev.System+"|"+ev.Code)
	cs.add("MessageHeader.response.identifier is the request's id (its Bundle id; its MessageHeader id, FHIR R4's reading, is also taken)",
		r.identifier != "" && slices.Contains(req.ids(), r.identifier),
		fmt.Sprintf("got %q; the request's Bundle id is %s", r.identifier, req.bundleID))
	var dest string
	if len(r.mh.Destination) > 0 {
		dest = r.mh.Destination[0].Endpoint
	}
	cs.add("MessageHeader.destination.endpoint is the request's source.endpoint (the sender answered)", dest != "" && dest == req.source,
		fmt.Sprintf("got %q; the request came from %q", dest, req.source))
	code := ""
	if r.mh.Response != nil {
		code = r.mh.Response.Code
	}
	cs.add("MessageHeader.response.code is one of "+strings.Join(responseCodes, ", "), slices.Contains(responseCodes, code), "got "+code)
	var focus string
	if len(r.mh.Focus) > 0 {
		focus = r.mh.Focus[0].Reference
	}
	sr, ok := r.msg.resolve(focus)
	cs.add("MessageHeader.focus resolves to the message's ServiceRequest", ok && sr.ResourceType == "ServiceRequest",
		fmt.Sprintf("focus %q resolves to %q", focus, sr.ResourceType))
	if ok && sr.ResourceType == "ServiceRequest" {
		var have []string
		for _, id := range sr.Identifier {
			have = append(have, id.System+"|"+id.Value)
		}
		var lost []string
		for _, id := range req.srIdentifiers {
			if !slices.Contains(have, id) {
				lost = append(lost, id)
			}
		}
		cs.add("the ServiceRequest keeps the referral's identifiers (the gateway finds the case by them)", len(lost) == 0,
			"missing "+strings.Join(lost, ", "))
	}
	sender := ""
	if r.mh.Sender != nil {
		sender = r.mh.Sender.Reference
	}
	org, ok := r.msg.resolve(sender)
	cs.add("MessageHeader.sender resolves to an Organization in the message", ok && org.ResourceType == "Organization",
		fmt.Sprintf("sender %q resolves to %q", sender, org.ResourceType))
}
