package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestApplyStep runs the cases of testdata/steps/apply.json: how a step is
// recorded (a booking may be a rebooking) and what the referral's status
// and evaluation times become, late and simultaneous reports included.
func TestApplyStep(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "steps", "apply.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name                   string
		Status                 ReferralStatus
		Earlier                []TimelineEntry
		New                    TimelineEntry
		WantStep               Step
		WantStatus             ReferralStatus
		WantAcknowledgedAt     time.Time
		WantFirstAppointmentAt time.Time
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			e, ref := ApplyStep(StoredReferral{Status: c.Status}, c.Earlier, c.New)
			if e.Step != c.WantStep || ref.Status != c.WantStatus || !ref.AcknowledgedAt.Equal(c.WantAcknowledgedAt) ||
				!ref.FirstAppointmentAt.Equal(c.WantFirstAppointmentAt) {
				t.Errorf("step %s, status %s, acknowledged %v, first appointment %v; want %s, %s, %v, %v",
					e.Step, ref.Status, ref.AcknowledgedAt, ref.FirstAppointmentAt, c.WantStep, c.WantStatus, c.WantAcknowledgedAt, c.WantFirstAppointmentAt)
			}
		})
	}
}

func TestDeliveryOf(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		m    OutboxMessage
		want Delivery
	}{
		{OutboxMessage{Kind: KindNew, State: MessagePending, DueAt: at}, Delivery{Kind: KindNew, State: MessagePending}},
		{OutboxMessage{Kind: KindNew, State: MessagePending, Attempts: 2, DueAt: at, LastError: "timeout: no answer in time"},
			Delivery{Kind: KindNew, State: MessagePending, Attempts: 2, ErrorClass: "timeout", NextRetryAt: at}},
		{OutboxMessage{Kind: KindNew, State: MessageDead, Attempts: 9, LastError: "gave up after 9 attempts: receiver answered 503 REC_UNAVAILABLE"},
			Delivery{Kind: KindNew, State: MessageDead, Attempts: 9, ErrorClass: "receiver-unavailable", DeadLetterReason: "retries-exhausted"}},
		{OutboxMessage{Kind: KindNew, State: MessageDead, Attempts: 3, LastError: "gave up: the next attempt would come after 72h0m0s in the queue: transport error: connection refused"},
			Delivery{Kind: KindNew, State: MessageDead, Attempts: 3, ErrorClass: "transport", DeadLetterReason: "too-long-in-queue"}},
		{OutboxMessage{Kind: KindCancel, State: MessageFailed, Attempts: 1, LastError: "receiver refused the message: 422 REC_UNPROCESSABLE_ENTITY"},
			Delivery{Kind: KindCancel, State: MessageFailed, Attempts: 1, ErrorClass: "receiver-refused"}},
		{OutboxMessage{Kind: KindNew, State: MessageDropped, LastError: "something new"},
			Delivery{Kind: KindNew, State: MessageDropped, ErrorClass: "other", DeadLetterReason: "dropped-by-operator"}},
	}
	for _, tt := range tests {
		if got := DeliveryOf(tt.m); got != tt.want {
			t.Errorf("DeliveryOf(%+v) = %+v, want %+v", tt.m, got, tt.want)
		}
	}
}
