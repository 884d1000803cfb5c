package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/student-mh-referrals/gateway/gateway"
)

// unavailableMessage is all a client learns when the database cannot be
// reached: the cause (an address, a server message) is for the operator's
// log, not for the university's system.
const unavailableMessage = "the store is unavailable; try again shortly"

// unavailable returns err as EUNAVAILABLE (503) when it says the database
// could not be reached or could not serve the request now, and nil for any
// other error:
//
//   - no connection: pgconn.ConnectError (refused, DNS, TLS, authentication
//     timeouts), a net.Error, a connection reset or broken pipe, io.EOF on a
//     connection the server or the network dropped, a connection pgx has
//     already closed (pgconn.SafeToRetry: nothing was sent);
//   - no time: context.DeadlineExceeded, e.g. waiting for a pooled
//     connection while the pool is exhausted, and pgconn.Timeout;
//   - the server says so: SQLSTATE class 08 (connection exception), class
//     53 (insufficient resources: too many connections, disk full, out of
//     memory), 57014 (statement timeout), 57P01..57P03 and 57P05 (shut
//     down, crashed, starting up, idle session ended), and 40001/40P01
//     once Store.tx has retried them.
//
// A transaction whose connection failed is rolled back by the server, so
// nothing half-written remains. The one ambiguous case is a COMMIT whose
// answer was lost: the transaction may have committed, and the client's
// retry finds it through the idempotency key (200, the same referral).
func unavailable(err error) *gateway.Error {
	if !isUnavailable(err) {
		return nil
	}
	return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: unavailableMessage, Err: err}
}

func isUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"), transient(err):
			return true
		case c == "57014", c == "57P01", c == "57P02", c == "57P03", c == "57P05":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}

// defaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout.
const defaultConnectTimeout = 5 * time.Second
