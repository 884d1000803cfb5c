package sandbox

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/student-mh-referrals/gateway/mappings"
)

// TestDefinitionFitsTheMessage: the MessageDefinition the sandbox publishes
// is met by every referral message the mapping builds (its goldens), so
// that the demo's referrals are accepted; a request without the context
// parameter is refused.
func TestDefinitionFitsTheMessage(t *testing.T) {
	rc := NewReceiver(Options{})
	defer rc.Close()
	h := rc.Handler()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/fhir/MessageDefinition?context=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fdos-service-id%7C2000010001", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rr.Code, rr.Body)
	}
	def, err := mappings.ParseMessageDefinition(rr.Body.Bytes())
	if err != nil || def.URL != DefinitionURL || len(def.Focus) == 0 {
		t.Fatalf("definition %+v, %v", def, err)
	}
	goldens, _ := filepath.Glob("../mappings/testdata/golden/*.bundle.json")
	if len(goldens) == 0 {
		t.Fatal("no mapping goldens")
	}
	for _, path := range goldens {
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if unmet, err := def.Unmet(body); err != nil || len(unmet) > 0 {
			t.Errorf("%s does not meet the sandbox's definition: %v %v", filepath.Base(path), unmet, err)
		}
	}
	rr = httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/fhir/MessageDefinition", nil))
	if rr.Code != http.StatusBadRequest {
		t.Errorf("without context: status %d, want 400", rr.Code)
	}
}
