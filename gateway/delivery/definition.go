package delivery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/mappings"
)

// DefinitionTTL is how long a receiver's MessageDefinition is cached before
// it is asked again. A failed refresh keeps the cached copy: a receiver
// that publishes a definition rarely changes it, and an outage must not stop
// intake that the last definition still describes.
const DefinitionTTL = time.Hour

// Definitions resolves each service's MessageDefinition for intake
// (gateway.DefinitionSource): the one its registry entry pins, or the
// receiver's own, asked for as the BaRS API describes
// (GET {endpoint}/MessageDefinition?context=system|value, with the BaRS
// headers and the receiver's bearer token) and cached.
type Definitions struct {
	receivers map[string]*receiver
	source    gateway.Source
	now       func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[string]cachedDefinition
}

// definitionTimeout bounds one request for a MessageDefinition: a referral
// waits for it, so a receiver that does not answer is 503 soon.
const definitionTimeout = 10 * time.Second

type cachedDefinition struct {
	def     *gateway.MessageDefinition
	fetched time.Time
}

// Definitions returns the resolver that shares the worker's clients (and so
// its TLS settings and token caches).
func (w *Worker) Definitions() *Definitions {
	return &Definitions{receivers: w.receivers, source: w.source, now: w.now, cache: map[string]cachedDefinition{}}
}

// Definition implements gateway.DefinitionSource.
func (d *Definitions) Definition(ctx context.Context, svc *gateway.Service) (*gateway.MessageDefinition, error) {
	if pinned := strings.TrimSpace(svc.MessageDefinition); pinned != "" {
		return &gateway.MessageDefinition{URL: pinned}, nil
	}
	d.mu.Lock()
	c, ok := d.cache[svc.ID]
	d.mu.Unlock()
	if ok && d.now().Sub(c.fetched) < DefinitionTTL {
		return c.def, nil
	}
	// One request asks the receiver at a time, however many referrals
	// wait for its definition.
	v, err, _ := d.flight.Do(svc.ID, func() (any, error) { return d.fetch(ctx, svc) })
	def, _ := v.(*gateway.MessageDefinition)
	if err != nil {
		if ok {
			return c.def, nil
		}
		return nil, &gateway.Error{Code: gateway.EUNAVAILABLE, Message: "MessageDefinition unavailable", Err: err}
	}
	d.mu.Lock()
	d.cache[svc.ID] = cachedDefinition{def: def, fetched: d.now()}
	d.mu.Unlock()
	return def, nil
}

// Prefetch asks every receiver without a pinned definition for its own, so
// that the first referral to each does not wait for it; a failure is
// returned per service and asked again at the first referral.
func (d *Definitions) Prefetch(ctx context.Context) map[string]error {
	failed := map[string]error{}
	for id, r := range d.receivers {
		if _, err := d.Definition(ctx, &r.svc); err != nil {
			failed[id] = err
		}
	}
	return failed
}

func (d *Definitions) fetch(ctx context.Context, svc *gateway.Service) (*gateway.MessageDefinition, error) {
	r, ok := d.receivers[svc.ID]
	if !ok {
		return nil, fmt.Errorf("service %q has no transport", svc.ID)
	}
	base := strings.TrimSuffix(r.url, "/$process-message")
	ctx, cancel := context.WithTimeout(ctx, definitionTimeout)
	defer cancel()
	q := url.Values{"context": {svc.Target.System + "|" + svc.Target.Value}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/MessageDefinition?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	h := gateway.Headers(gateway.OutboxMessage{RequestID: id, CorrelationID: id, Sender: gateway.Sender{Name: d.source.Name}}, *svc, d.source)
	h.Del("Content-Type")
	req.Header = h
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET MessageDefinition of %s: status %d", svc.ID, resp.StatusCode)
	}
	return mappings.ParseMessageDefinition(body)
}
