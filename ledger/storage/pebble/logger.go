package pebblestore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// logger adapts a slog.Logger to pebble.Logger. Pebble's default logger
// writes to the process's standard log, which a service must not have
// filled with engine chatter.
type logger struct {
	l *slog.Logger
}

var _ pebble.Logger = logger{}

func newLogger(l *slog.Logger) logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return logger{l: l.With("engine", "pebble")}
}

func (g logger) Infof(format string, args ...any) { g.log(slog.LevelDebug, format, args) }

func (g logger) Errorf(format string, args ...any) { g.log(slog.LevelError, format, args) }

// Fatalf is how Pebble reports a broken invariant; it expects the process
// not to go on, as its default logger calls os.Exit. A panic stops the
// process as surely and leaves a stack trace behind.
func (g logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	g.l.Error(msg)
	panic("pebblestore: fatal: " + msg)
}

func (g logger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	g.l.Log(ctx, level, fmt.Sprintf(format, args...))
}
