package sqlstore_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

//go:embed testdata/accept.json
var acceptScenarios []byte

// acceptScenario is a sequence of accepts and what each must give; steps
// refer to earlier steps by index.
type acceptScenario struct {
	Name  string `json:"name"`
	Steps []struct {
		Institution string `json:"institution"`
		Case        string `json:"case"`
		Content     string `json:"content"`
		// Previous names the step whose referral is passed as PreviousID;
		// PreviousID passes a literal id.
		Previous   *int   `json:"previous"`
		PreviousID string `json:"previousId"`
		Want       struct {
			Error        string `json:"error"`
			Created      bool   `json:"created"`
			Version      int    `json:"version"`
			Kind         string `json:"kind"`
			PreviousStep *int   `json:"previousStep"`
			SameAs       *int   `json:"sameAs"`
		} `json:"want"`
	} `json:"steps"`
}

func testAccept(t *testing.T, open func(testing.TB) *store) {
	var scenarios []acceptScenario
	if err := json.Unmarshal(acceptScenarios, &scenarios); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			ids := make([]string, len(sc.Steps))
			created := 0
			for i, st := range sc.Steps {
				inst := st.Institution
				if inst == "" {
					inst = instA
				}
				prev := st.PreviousID
				if st.Previous != nil {
					prev = ids[*st.Previous]
				}
				at := t0.Add(time.Duration(i) * time.Minute)
				req := newAcceptRequest(inst, st.Case, st.Content, prev, at)
				res, err := s.Accept(ctx, req)
				if st.Want.Error != "" {
					wantCode(t, err, st.Want.Error)
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				ref := res.Referral
				ids[i] = ref.ID
				if res.Created != st.Want.Created || ref.Version != st.Want.Version {
					t.Fatalf("step %d: created %v version %d, want %v %d", i, res.Created, ref.Version, st.Want.Created, st.Want.Version)
				}
				if st.Want.SameAs != nil && ref.ID != ids[*st.Want.SameAs] {
					t.Fatalf("step %d: id %s, want step %d's %s", i, ref.ID, *st.Want.SameAs, ids[*st.Want.SameAs])
				}
				wantPrev := ""
				if st.Want.PreviousStep != nil {
					wantPrev = ids[*st.Want.PreviousStep]
				}
				if st.Want.SameAs == nil && ref.PreviousID != wantPrev {
					t.Fatalf("step %d: previousId %q, want %q", i, ref.PreviousID, wantPrev)
				}
				if !res.Created {
					if res.Message.ID != "" || res.Decision.Seq != 0 {
						t.Fatalf("step %d: a repeated accept wrote a message or a decision", i)
					}
					continue
				}
				created++
				checkCreated(t, s, req, res, at, gateway.MessageKind(st.Want.Kind))
			}
			// Exactly one decision and one message per created version.
			for _, inst := range []string{instA, instB} {
				v := must[gateway.ChainVerification](t)(s.Verify(ctx, inst))
				if !v.OK {
					t.Fatalf("chain %s: %+v", inst, v)
				}
				created -= int(v.Records)
			}
			if created != 0 {
				t.Fatalf("decision records differ from created versions by %d", -created)
			}
		})
	}
}

// checkCreated checks everything a created version must have: the referral as
// stored, its decision record and its pending message.
func checkCreated(t *testing.T, s gateway.Store, req gateway.AcceptRequest, res gateway.AcceptResult, at time.Time, kind gateway.MessageKind) {
	t.Helper()
	ctx := context.Background()
	ref := res.Referral
	if ref.ID != gateway.ReferralID(req.Institution, req.CaseID, req.ContentHash) {
		t.Fatalf("id %s is not ReferralID of the key", ref.ID)
	}
	got := must[gateway.StoredReferral](t)(s.Referral(ctx, req.Institution, ref.ID))
	if got.Status != gateway.StatusQueued || !got.AcceptedAt.Equal(at) || got.Version != ref.Version ||
		got.PreviousID != ref.PreviousID || got.DecisionID != req.Decision.DecisionID || got.ServiceID != req.ServiceID ||
		!jsonEqual(got.Record, req.Record) || !jsonEqual(got.Bundle, req.Bundle) || !got.PurgedAt.IsZero() {
		t.Fatalf("stored referral %+v does not match the request", got)
	}
	latest := must[gateway.StoredReferral](t)(s.LatestReferral(ctx, req.Institution, req.CaseID))
	if latest.ID != ref.ID {
		t.Fatalf("latest version is %s, want %s", latest.ID, ref.ID)
	}
	d := res.Decision
	if d.Institution != req.Institution || d.DecisionID != req.Decision.DecisionID || d.Seq < 1 || d.Hash != gateway.DecisionHash(d) {
		t.Fatalf("decision record %+v", d)
	}
	recs := must[[]gateway.DecisionRecord](t)(s.Decisions(ctx, req.Institution, d.Seq-1, 1))
	if len(recs) != 1 || recs[0].Hash != d.Hash || !jsonEqual(recs[0].Body, req.Decision.Body) {
		t.Fatalf("stored decision %+v, want %+v", recs, d)
	}
	if byID := must[gateway.DecisionRecord](t)(s.Decision(ctx, req.Institution, d.DecisionID)); byID.Hash != d.Hash {
		t.Fatalf("decision by id %+v, want %+v", byID, d)
	}
	m := must[gateway.OutboxMessage](t)(s.Message(ctx, res.Message.ID))
	if m.State != gateway.MessagePending || m.Kind != kind || m.ReferralID != ref.ID || !m.DueAt.Equal(at) ||
		m.RequestID == "" || m.RequestID != res.Message.RequestID || m.CorrelationID != m.RequestID ||
		m.Attempts != 0 || !jsonEqual(m.Body, req.Bundle) || !reflect.DeepEqual(m.Sender, req.Sender) ||
		!reflect.DeepEqual(res.Message.Sender, req.Sender) {
		t.Fatalf("queued message %+v (kind want %s)", m, kind)
	}
}

func testAcceptInvalid(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	tests := []struct {
		name   string
		change func(r *gateway.AcceptRequest)
	}{
		{"no institution", func(r *gateway.AcceptRequest) { r.Institution = "" }},
		{"no content hash", func(r *gateway.AcceptRequest) { r.ContentHash = "" }},
		{"no service", func(r *gateway.AcceptRequest) { r.ServiceID = "" }},
		{"bundle not JSON", func(r *gateway.AcceptRequest) { r.Bundle = []byte("{") }},
		{"no record", func(r *gateway.AcceptRequest) { r.Record = nil }},
		{"no decision id", func(r *gateway.AcceptRequest) { r.Decision.DecisionID = "" }},
		{"decision body not JSON", func(r *gateway.AcceptRequest) { r.Decision.Body = []byte("allow") }},
		{"decision of another institution", func(r *gateway.AcceptRequest) { r.Decision.Institution = instB }},
		{"no time", func(r *gateway.AcceptRequest) { r.At = time.Time{} }},
		{"decision input without a registry entry", func(r *gateway.AcceptRequest) {
			r.Decision.Input = &gateway.RetainedInput{DecidedAt: t0, Record: r.Record}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newAcceptRequest(instA, "C1", "a", "", t0)
			tt.change(&req)
			_, err := s.Accept(context.Background(), req)
			wantCode(t, err, gateway.EINVALID)
		})
	}
	if _, err := s.LatestReferral(context.Background(), instA, "C1"); gateway.ErrorCode(err) != gateway.ENOTFOUND {
		t.Fatalf("an invalid request left a referral behind: %v", err)
	}
}

// testConcurrentDuplicates: a client retrying on timeout while its first
// request is still running must not create two referrals.
func testConcurrentDuplicates(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	other := s.another(t)
	const n = 24
	req := newAcceptRequest(instA, "C-dup", "a", "", t0)
	var wg sync.WaitGroup
	results := make([]gateway.AcceptResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st gateway.Store = s
			if i%2 == 1 {
				st = other
			}
			<-start
			results[i], errs[i] = st.Accept(context.Background(), req)
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("accept %d: %v", i, errs[i])
		}
		if results[i].Referral.ID != results[0].Referral.ID || results[i].Referral.Version != 1 {
			t.Fatalf("accept %d gave %s v%d", i, results[i].Referral.ID, results[i].Referral.Version)
		}
		if results[i].Created {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d accepts created the referral, want exactly 1", created)
	}
	ctx := context.Background()
	st := must[gateway.QueueStats](t)(s.QueueStats(ctx))
	if st.Counts[gateway.MessagePending] != 1 {
		t.Fatalf("queue holds %d messages, want 1", st.Counts[gateway.MessagePending])
	}
	v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA))
	if !v.OK || v.Records != 1 {
		t.Fatalf("chain %+v, want 1 record", v)
	}
}

// testConcurrentVersions: two different changes to one case built on the same
// version; one wins, the other is told to rebuild, and the chain holds one
// record per version.
func testConcurrentVersions(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	other := s.another(t)
	ctx := context.Background()
	first := accept(t, s, newAcceptRequest(instA, "C1", "v1", "", t0))
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st gateway.Store = s
			if i%2 == 1 {
				st = other
			}
			<-start
			_, errs[i] = st.Accept(ctx, newAcceptRequest(instA, "C1", "v2-"+string(rune('a'+i)), first.Referral.ID, t0.Add(time.Minute)))
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch gateway.ErrorCode(err) {
		case "":
			won++
		case gateway.ECONFLICT:
		default:
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent changes were accepted, want 1", won)
	}
	latest := must[gateway.StoredReferral](t)(s.LatestReferral(ctx, instA, "C1"))
	if latest.Version != 2 || latest.PreviousID != first.Referral.ID {
		t.Fatalf("latest %+v", latest)
	}
	v := must[gateway.ChainVerification](t)(s.Verify(ctx, instA))
	if !v.OK || v.Records != 2 {
		t.Fatalf("chain %+v, want 2 records", v)
	}
}

func testTenancy(t *testing.T, open func(testing.TB) *store) {
	s := open(t)
	ctx := context.Background()
	res := accept(t, s, newAcceptRequest(instA, "C1", "a", "", t0))
	tests := []struct {
		name string
		call func() error
	}{
		{"referral of another institution", func() error {
			_, err := s.Referral(ctx, instB, res.Referral.ID)
			return err
		}},
		{"latest version of another institution's case", func() error {
			_, err := s.LatestReferral(ctx, instB, "C1")
			return err
		}},
		{"cancel another institution's referral", func() error {
			_, err := s.Cancel(ctx, gateway.CancelRequest{Institution: instB, ReferralID: res.Referral.ID, Bundle: []byte(`{}`), At: t0})
			return err
		}},
		{"unknown referral", func() error {
			_, err := s.Referral(ctx, instA, gateway.ReferralID(instA, "C1", "other"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), gateway.ENOTFOUND) })
	}
	// The failed cancel changed nothing.
	if got := must[gateway.StoredReferral](t)(s.Referral(ctx, instA, res.Referral.ID)); got.Status != gateway.StatusQueued {
		t.Fatalf("status %s after another institution's cancel", got.Status)
	}
}
