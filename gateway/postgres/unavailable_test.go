package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlstore"
)

func TestMapErr(t *testing.T) {
	// A real connection failure: nothing listens on port 1.
	_, refused := pgconn.Connect(context.Background(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	if refused == nil {
		t.Fatal("connected to port 1")
	}
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"connection refused", refused, gateway.EUNAVAILABLE},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, gateway.EUNAVAILABLE},
		{"dropped connection (EOF)", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), gateway.EUNAVAILABLE},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), gateway.EUNAVAILABLE},
		{"pool exhausted until the deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), gateway.EUNAVAILABLE},
		{"caller gone", context.Canceled, gateway.EUNAVAILABLE},
		{"08006 connection failure", pg("08006"), gateway.EUNAVAILABLE},
		{"53300 too many connections", pg("53300"), gateway.EUNAVAILABLE},
		{"53100 disk full", pg("53100"), gateway.EUNAVAILABLE},
		{"57014 statement timeout", pg("57014"), gateway.EUNAVAILABLE},
		{"57P01 admin shutdown", pg("57P01"), gateway.EUNAVAILABLE},
		{"57P02 crash shutdown", pg("57P02"), gateway.EUNAVAILABLE},
		{"57P03 cannot connect now", pg("57P03"), gateway.EUNAVAILABLE},
		{"40001 after the retries", pg("40001"), gateway.EUNAVAILABLE},
		{"57P04 database dropped", pg("57P04"), gateway.EINTERNAL},
		{"23505 unique violation", pg("23505"), gateway.EINTERNAL},
		{"42P01 undefined table", pg("42P01"), gateway.EINTERNAL},
		{"anything else", errors.New("scan: cannot convert"), gateway.EINTERNAL},
		{"gateway error passes", gateway.Errorf(gateway.ECONFLICT, "x"), gateway.ECONFLICT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dialect.MapErr(tt.err)
			if got := gateway.ErrorCode(err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
			if e := gateway.AsError(err); tt.code == gateway.EUNAVAILABLE && tt.err != context.Canceled &&
				(e.Message != sqlstore.UnavailableMessage || !errors.Is(err, tt.err)) {
				t.Errorf("message %q, cause kept %v; want %q with the cause", e.Message, errors.Is(err, tt.err), sqlstore.UnavailableMessage)
			}
		})
	}
}
