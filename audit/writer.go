package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultMaxBytes is the rotation size when Config.MaxBytes is zero.
const DefaultMaxBytes = 64 << 20

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: writer closed")

// Config configures a Writer.
type Config struct {
	// Path is the current file, e.g. /var/lib/postured/audit.jsonl. Rotated
	// files go next to it; its directory is created if missing.
	Path string
	// MaxBytes rotates the current file before a batch would take it past
	// this size; a file is larger only when one batch is. Zero means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles is how many files are kept, the current one included; the
	// oldest rotated files beyond it are deleted at each rotation. Zero
	// keeps every file (when they are shipped and pruned elsewhere).
	MaxFiles int
	// MaxAge deletes the rotated files rotated out longer ago than this
	// (every line in them is older), at New, at each rotation, and at most
	// hourly on Append. Zero keeps files of any age.
	MaxAge time.Duration
	// Logger reports a failed retention, which does not fail an Append:
	// the batch is still recorded, and the next retention retries. Nil
	// discards.
	Logger *slog.Logger
	// Now is the clock for record times and rotated names; nil means
	// time.Now.
	Now func() time.Time
}

// retainEvery is how often Append applies MaxAge between rotations.
const retainEvery = time.Hour

// Writer appends records to the log. It is safe for concurrent use; the
// batches of concurrent Appends are written one after the other.
//
// Each Append is one write of the whole batch followed by an fsync, so when
// Append returns nil the batch is on disk, and when it returns an error
// nothing of the batch is in the file (a short write is truncated away),
// barring a crash mid-write, which the next New handles. After a failure
// that leaves the file's state unknown (a failed fsync, truncate or
// rotation), every later Append fails until the log is reopened with New.
type Writer struct {
	cfg Config
	set set

	mu          sync.Mutex
	f           *os.File
	size        int64
	seq         uint64
	head        string
	lastRotated time.Time
	lastRetain  time.Time
	failed      error
	closed      bool
}

// New opens the log at cfg.Path and resumes its chain from the last line of
// the current file, or of the newest rotated file if the current one is
// empty or missing. A partial last line is not chained onto: the file is
// rotated aside and the new current file starts with a break line (see the
// package doc). A last line that is complete but not a record is refused
// with an error naming its file and line.
func New(cfg Config) (*Writer, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: open: no path")
	}
	if cfg.MaxBytes < 0 || cfg.MaxFiles < 0 || cfg.MaxAge < 0 {
		return nil, fmt.Errorf("audit: open: max_bytes %d, max_files %d and max_age %s must not be negative", cfg.MaxBytes, cfg.MaxFiles, cfg.MaxAge)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{cfg: cfg, set: newSet(cfg.Path), head: Genesis}
	if err := os.MkdirAll(w.set.dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if err := w.resume(); err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	w.retain()
	return w, nil
}

// resume finds where the chain ends, recovers from a partial last line,
// and opens the current file for appending.
func (w *Writer) resume() error {
	rot, err := w.set.rotated()
	if err != nil {
		return err
	}
	if len(rot) > 0 {
		w.lastRotated = rot[len(rot)-1].at
	}
	// files is the set in chain order; the newest non-empty one ends the chain.
	var files []string
	for _, r := range rot {
		files = append(files, r.path)
	}
	st, err := os.Stat(w.set.path)
	switch {
	case err == nil && st.Size() > 0:
		files = append(files, w.set.path)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	var damaged string
	var brk Break
	for i := len(files) - 1; i >= 0; i-- {
		t, err := readTail(files[i])
		if err != nil {
			return err
		}
		if t.partial > 0 {
			if damaged != "" {
				return fmt.Errorf("%s:%d and %s:%d are both partial lines (two crashes mid-write?); move the newer file aside after checking it with verify", files[i], t.lastLine+1, damaged, brk.Line)
			}
			damaged = files[i]
			brk = Break{File: filepath.Base(files[i]), Line: t.lastLine + 1, Bytes: t.partial}
		}
		if t.last == nil {
			continue
		}
		e, err := parseEntry(t.last)
		if err != nil {
			line := t.lastLine
			if line == 0 {
				line = lineNumber(files[i])
			}
			return fmt.Errorf("%s:%d: last line is not an audit record, refusing to chain onto it: %w", files[i], line, err)
		}
		w.seq, w.head = e.Seq, lineHash(t.last)
		break
	}
	if damaged != "" {
		if damaged == w.set.path {
			rotatedTo, err := w.moveAside()
			if err != nil {
				return err
			}
			brk.File = filepath.Base(rotatedTo)
		}
		return w.startWithBreak(brk)
	}
	f, err := os.OpenFile(w.set.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if st, err = f.Stat(); err != nil {
		return errors.Join(err, f.Close())
	}
	w.f, w.size = f, st.Size()
	return syncDir(w.set.dir)
}

// startWithBreak makes a new current file whose first line is the break
// line. It is written to a temporary file and renamed into place, so a
// crash leaves either no current file (and the next New recovers again) or
// one with the whole break line.
func (w *Writer) startWithBreak(b Break) error {
	line, err := json.Marshal(breakLine{Seq: w.seq + 1, Time: w.cfg.Now().UTC(), Break: &b, Prev: w.head})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	tmp := w.set.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // #nosec G304 -- beside the configured audit path
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, w.set.path); err != nil {
		return err
	}
	if err := syncDir(w.set.dir); err != nil {
		return err
	}
	if f, err = os.OpenFile(w.set.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	w.f, w.size = f, int64(len(line))
	w.seq, w.head = w.seq+1, lineHash(line[:len(line)-1])
	return nil
}

// Append writes records as one batch, in order, chained to the last line.
func (w *Writer) Append(ctx context.Context, records ...Record) error {
	if len(records) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.failed != nil {
		return fmt.Errorf("audit: append: an earlier failure left the log in an unknown state, reopen it: %w", w.failed)
	}
	var buf bytes.Buffer
	seq, head := w.seq, w.head
	for _, r := range records {
		seq++
		r.Seq, r.Prev = seq, head
		if r.Time.IsZero() {
			r.Time = w.cfg.Now()
		}
		r.Time = r.Time.UTC()
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("audit: append: encode device %q: %w", r.DeviceID, err)
		}
		if len(b) > MaxLineBytes {
			return fmt.Errorf("audit: append: record for device %q is %d bytes, over the %d-byte line limit", r.DeviceID, len(b), MaxLineBytes)
		}
		buf.Write(b)
		buf.WriteByte('\n')
		head = lineHash(b)
	}
	if w.size > 0 && w.size+int64(buf.Len()) > w.cfg.MaxBytes {
		if err := w.rotate(); err != nil {
			return fmt.Errorf("audit: append: %w", err)
		}
	} else if w.cfg.MaxAge > 0 && w.cfg.Now().Sub(w.lastRetain) >= retainEvery {
		w.retain()
	}
	if n, err := w.f.Write(buf.Bytes()); err != nil {
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				w.failed = fmt.Errorf("truncate %s after a short write: %w", w.set.path, terr)
			}
		}
		return fmt.Errorf("audit: append: write %s: %w", w.set.path, err)
	}
	w.size += int64(buf.Len())
	if err := w.f.Sync(); err != nil {
		w.failed = fmt.Errorf("sync %s: %w", w.set.path, err)
		return fmt.Errorf("audit: append: sync %s: %w", w.set.path, err)
	}
	w.seq, w.head = seq, head
	return nil
}

// rotate renames the current file to its rotated name, starts a new one and
// applies retention.
func (w *Writer) rotate() error {
	if _, err := w.moveAside(); err != nil {
		w.failed = fmt.Errorf("rotate: %w", err)
		return w.failed
	}
	f, err := os.OpenFile(w.set.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err == nil {
		err = syncDir(w.set.dir)
	}
	if err != nil {
		w.failed = fmt.Errorf("rotate: %w", err)
		return w.failed
	}
	w.f, w.size = f, 0
	w.retain()
	return nil
}

// moveAside closes the current file, if open, and renames it to its rotated
// name. Names are stamped with the clock but kept strictly increasing, so
// they sort in chain order even if the clock steps back.
func (w *Writer) moveAside() (string, error) {
	if w.f != nil {
		err := w.f.Close()
		w.f = nil
		if err != nil {
			return "", err
		}
	}
	at := w.cfg.Now().UTC()
	if !at.After(w.lastRotated) {
		at = w.lastRotated.Add(time.Nanosecond)
	}
	to := w.set.rotatedPath(at)
	if err := os.Rename(w.set.path, to); err != nil {
		return "", err
	}
	w.lastRotated = at
	return to, syncDir(w.set.dir)
}

// retain deletes the oldest rotated files beyond MaxFiles and those older
// than MaxAge. A failure is logged, not returned: losing a batch's record
// over an old file that will not go would be the worse outcome.
func (w *Writer) retain() {
	if w.cfg.MaxFiles == 0 && w.cfg.MaxAge == 0 {
		return
	}
	now := w.cfg.Now()
	w.lastRetain = now
	rot, err := w.set.rotated()
	if err != nil {
		w.cfg.Logger.Warn("audit log retention failed", "error", err)
		return
	}
	for len(rot) > 0 {
		tooMany := w.cfg.MaxFiles > 0 && len(rot)+1 > w.cfg.MaxFiles
		tooOld := w.cfg.MaxAge > 0 && now.Sub(rot[0].at) > w.cfg.MaxAge
		if !tooMany && !tooOld {
			return
		}
		if err := os.Remove(rot[0].path); err != nil {
			w.cfg.Logger.Warn("audit log retention failed", "error", err)
			return
		}
		rot = rot[1:]
	}
}

// Head is the seq and hash of the last line written: record it somewhere
// the log's writer cannot change, and Verify's Summary.Head must match it.
func (w *Writer) Head() (seq uint64, hash string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq, w.head
}

// Close closes the current file. Every Append has already synced.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}

// syncDir makes a create or rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the configured audit path's directory
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
