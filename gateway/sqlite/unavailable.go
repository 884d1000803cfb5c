package sqlite

import (
	"context"
	"errors"

	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/student-mh-referrals/gateway/gateway"
)

// unavailableMessage is all a client learns when the store cannot take a
// write now: the cause (a full disk, an I/O error) is for the operator's
// log, not for the university's system.
const unavailableMessage = "the store is unavailable; try again shortly"

// unavailable returns err as EUNAVAILABLE (503) when it says the database
// cannot serve the request now but may once an operator or time has
// fixed the cause, and nil for any other error:
//
//   - SQLITE_FULL: the disk (or PRAGMA max_page_count) is full;
//   - SQLITE_IOERR: the file could not be read or written;
//   - SQLITE_BUSY: another handle held the lock beyond busy_timeout;
//   - context.DeadlineExceeded: the caller's time ran out waiting for the
//     writer.
//
// Each such failure leaves nothing written: the transaction (or, under
// group commit, the job's savepoint) is rolled back before the error
// reaches the caller, so a client may simply try again.
func unavailable(err error) *gateway.Error {
	var se *sqlite3.Error
	switch {
	case errors.As(err, &se):
		switch se.Code() & 0xff { // the primary code; extended codes refine it
		case sqlitelib.SQLITE_FULL, sqlitelib.SQLITE_IOERR, sqlitelib.SQLITE_BUSY:
		default:
			return nil
		}
	case errors.Is(err, context.DeadlineExceeded):
	default:
		return nil
	}
	return &gateway.Error{Code: gateway.EUNAVAILABLE, Message: unavailableMessage, Err: err}
}
