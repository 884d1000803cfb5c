package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"testing"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
	"github.com/student-mh-referrals/gateway/gateway/opa"
	"github.com/student-mh-referrals/gateway/mappings"
	"github.com/student-mh-referrals/gateway/policies"
)

// testGateway is the example configuration's evaluator, built once: the
// policies take a moment to compile.
var testGateway = sync.OnceValues(func() (*gateway.Evaluator, error) {
	cfg, err := config.Load("")
	if err != nil {
		return nil, err
	}
	reg, err := cfg.Registry()
	if err != nil {
		return nil, err
	}
	dec, err := opa.New(context.Background(), policies.FS)
	if err != nil {
		return nil, err
	}
	src := cfg.Source
	src.Version = "test"
	return &gateway.Evaluator{Registry: reg, Decider: dec, Mapper: mappings.New(), Source: src, Validator: fhirvalidator.Builtin()}, nil
})

func evaluator(t testing.TB) *gateway.Evaluator {
	t.Helper()
	ev, err := testGateway()
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// testAPI is the gateway's API over the example configuration, with a
// submitter client per institution of the scenarios (token "token-UKPRN")
// and no store: $evaluate with its authentication and its institution check.
func testAPI(t testing.TB, scenarios []Scenario) (http.Handler, func(string) (string, bool)) {
	t.Helper()
	ev := evaluator(t)
	var creds []gwhttp.Credential
	seen := map[string]bool{}
	for _, s := range scenarios {
		if seen[s.Institution] {
			continue
		}
		seen[s.Institution] = true
		sum := sha256.Sum256([]byte("token-" + s.Institution))
		creds = append(creds, gwhttp.Credential{
			Client:      gateway.Client{ID: "test-" + s.Institution, Institution: s.Institution, Roles: []string{gateway.RoleSubmitter}},
			TokenSHA256: hex.EncodeToString(sum[:]),
		})
	}
	srv := &gwhttp.Server{
		Evaluator:    ev,
		Intake:       &gateway.Intake{Evaluator: ev},
		Auth:         gwhttp.NewAuthenticator(creds, false),
		MaxBodyBytes: 256 << 10,
		Schema:       gateway.CaseRecordSchema,
	}
	return srv.Handler(), func(inst string) (string, bool) { return "token-" + inst, seen[inst] }
}

func builtinScenarios(t testing.TB) []Scenario {
	t.Helper()
	ss, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return ss
}
