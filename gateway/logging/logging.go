// Package logging builds the gateway's structured JSON logger. (The HTTP
// adapter gives each request a logger that names the request's id.)
//
// What may be logged is deliberately narrow: ids the gateway derives (request,
// decision, referral), rule ids, service ids, outcomes, counts, paths of
// invalid fields and timings. Never names, NHS numbers, dates of birth,
// contact details or free text: callers pass only such fields, and the tests
// of the packages that log check their output against the example cases.
package logging

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger at the given level ("debug", "info", "warn",
// "error") writing to w.
func New(w io.Writer, level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.MessageKey = "msg"
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(w))), nil
}
