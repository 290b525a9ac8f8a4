package replica

import (
	"context"
	"fmt"
	"log/slog"
)

// raftLogger routes etcd raft's log lines to the node's slog logger, so that
// the simulator stamps them with virtual time. Raft's chatter goes to Debug.
type raftLogger struct{ log *slog.Logger }

func (l *raftLogger) logf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "raft: "+fmt.Sprintf(format, args...))
	}
}

func (l *raftLogger) Debug(v ...any)                 { l.logf(slog.LevelDebug, "%s", fmt.Sprint(v...)) }
func (l *raftLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l *raftLogger) Info(v ...any)                  { l.logf(slog.LevelDebug, "%s", fmt.Sprint(v...)) }
func (l *raftLogger) Infof(format string, v ...any)  { l.logf(slog.LevelDebug, format, v...) }
func (l *raftLogger) Warning(v ...any)               { l.logf(slog.LevelWarn, "%s", fmt.Sprint(v...)) }
func (l *raftLogger) Warningf(format string, v ...any) {
	l.logf(slog.LevelWarn, format, v...)
}
func (l *raftLogger) Error(v ...any)                 { l.logf(slog.LevelError, "%s", fmt.Sprint(v...)) }
func (l *raftLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v...) }
func (l *raftLogger) Fatal(v ...any)                 { panic("raft: " + fmt.Sprint(v...)) }
func (l *raftLogger) Fatalf(format string, v ...any) { panic("raft: " + fmt.Sprintf(format, v...)) }
func (l *raftLogger) Panic(v ...any)                 { panic("raft: " + fmt.Sprint(v...)) }
func (l *raftLogger) Panicf(format string, v ...any) { panic("raft: " + fmt.Sprintf(format, v...)) }
