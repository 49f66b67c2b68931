// Package logging holds the one default every component applies to the
// logger it is given: none means silence, never slog.Default, so a library
// package cannot write to a process's log unless it was handed one.
package logging

import "log/slog"

// OrDiscard returns l, or a logger that drops everything when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
