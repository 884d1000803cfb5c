package http

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/student-mh-referrals/gateway/gateway"
)

// TestOpenAPIMatchesRouter: every route the fully configured server serves
// is documented, and every documented route is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	s := &Server{
		Intake:              &gateway.Intake{},
		Evaluations:         &gateway.Evaluations{},
		Rules:               func() []gateway.PolicyRule { return nil },
		CapabilityStatement: []byte("{}"),
	}
	served := map[string]bool{}
	err := s.router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			return err
		}
		for _, m := range methods {
			served[strings.ToLower(m)+" "+path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[m+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("served but not documented in openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("documented but not served: %v", extra)
	}
	if len(served) < 12 {
		t.Errorf("only %d routes found; the walk is broken", len(served))
	}
}
