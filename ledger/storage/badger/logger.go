package badgerstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// logger adapts a slog.Logger to badger.Logger. Badger's default logger
// writes every table it opens to standard error.
type logger struct {
	l *slog.Logger
}

var _ badger.Logger = logger{}

func newLogger(l *slog.Logger) logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return logger{l: l.With("engine", "badger")}
}

func (g logger) Errorf(format string, args ...any) { g.log(slog.LevelError, format, args) }

func (g logger) Warningf(format string, args ...any) { g.log(slog.LevelWarn, format, args) }

func (g logger) Infof(format string, args ...any) { g.log(slog.LevelDebug, format, args) }

func (g logger) Debugf(format string, args ...any) { g.log(slog.LevelDebug, format, args) }

func (g logger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !g.l.Enabled(ctx, level) {
		return
	}
	g.l.Log(ctx, level, fmt.Sprintf(format, args...))
}
