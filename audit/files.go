package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// stampLayout names rotated files; fixed width, so names sort in time order.
const stampLayout = "20060102T150405.000000000"

// set is the current file and the names its rotated files take.
type set struct {
	path, dir, stem, ext string
}

func newSet(path string) set {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	return set{path: path, dir: filepath.Clean(dir), stem: strings.TrimSuffix(base, ext), ext: ext}
}

type rotatedFile struct {
	path string
	at   time.Time
}

func (s set) rotatedPath(at time.Time) string {
	return filepath.Join(s.dir, s.stem+"-"+at.UTC().Format(stampLayout)+"Z"+s.ext)
}

// rotated lists the set's rotated files, oldest first.
func (s set) rotated() ([]rotatedFile, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []rotatedFile
	for _, de := range des {
		name := de.Name()
		stamp, ok := strings.CutPrefix(name, s.stem+"-")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if stamp, ok = strings.CutSuffix(stamp, "Z"+s.ext); !ok {
			continue
		}
		at, err := time.ParseInLocation(stampLayout, stamp, time.UTC)
		if err != nil {
			continue
		}
		out = append(out, rotatedFile{path: filepath.Join(s.dir, name), at: at})
	}
	slices.SortFunc(out, func(a, b rotatedFile) int { return a.at.Compare(b.at) })
	return out, nil
}

// Files lists the files of the log whose current file is path, in chain
// order: the rotated files oldest first, then path if it exists. Pass the
// result to Verify or Find.
func Files(path string) ([]string, error) {
	s := newSet(path)
	rot, err := s.rotated()
	if err != nil {
		return nil, fmt.Errorf("audit: list files: %w", err)
	}
	out := make([]string, 0, len(rot)+1)
	for _, r := range rot {
		out = append(out, r.path)
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit: list files: %w", err)
	}
	return out, nil
}

// FilesIn finds the log kept in dir, for a reader given a directory rather
// than the current file's path: the one set of ".jsonl" files there, the
// current "NAME.jsonl" and its rotated "NAME-<stamp>Z.jsonl", in chain
// order. It is an error if dir holds none, or files of more than one log.
func FilesIn(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: find the log: %w", err)
	}
	stems := make(map[string]bool)
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), ".jsonl")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if i := strings.LastIndexByte(name, '-'); i >= 0 && strings.HasSuffix(name, "Z") {
			if _, err := time.Parse(stampLayout, name[i+1:len(name)-1]); err == nil {
				name = name[:i]
			}
		}
		stems[name] = true
	}
	switch len(stems) {
	case 0:
		return nil, fmt.Errorf("audit: find the log: no .jsonl files in %s", dir)
	case 1:
		for stem := range stems {
			return Files(filepath.Join(dir, stem+".jsonl"))
		}
	}
	names := slices.Sorted(maps.Keys(stems))
	return nil, fmt.Errorf("audit: find the log: %s holds more than one log (%s.jsonl); name the current file instead", dir, strings.Join(names, ".jsonl, "))
}

// lineReader reads lines of at most MaxLineBytes, keeping their exact
// bytes.
type lineReader struct {
	r    *bufio.Reader
	buf  []byte
	line int // number of the line last returned
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its newline and whether it had one
// (only a file's last line can lack it). The slice is valid until the next
// call. At the end it returns io.EOF.
func (lr *lineReader) next() ([]byte, bool, error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.buf = append(lr.buf, chunk...)
		if len(lr.buf) > MaxLineBytes+1 {
			return nil, false, fmt.Errorf("line %d is longer than %d bytes", lr.line+1, MaxLineBytes)
		}
		switch {
		case err == nil:
			lr.line++
			return lr.buf[:len(lr.buf)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(lr.buf) > 0:
			lr.line++
			return lr.buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// tail is how a file ends.
type tail struct {
	last     []byte // the last complete line; nil if there is none
	lastLine int
	partial  int // length of a final line without newline; 0 if none
}

// readTail reads the end of a file. A file that ends in a newline needs only
// its last MaxLineBytes+1 bytes; one that does not (a crash mid-write) is
// read whole, for the partial line's number.
func readTail(path string) (tail, error) {
	f, err := os.Open(path) // #nosec G304 -- one of the configured audit log's files
	if err != nil {
		return tail{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	size := st.Size()
	if size == 0 {
		return tail{}, nil
	}
	off := max(0, size-(MaxLineBytes+1))
	win := make([]byte, size-off)
	if _, err := f.ReadAt(win, off); err != nil {
		return tail{}, err
	}
	if win[len(win)-1] == '\n' {
		body := win[:len(win)-1]
		i := bytes.LastIndexByte(body, '\n')
		if i >= 0 || off == 0 {
			return tail{last: bytes.Clone(body[i+1:])}, nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return tail{}, err
	}
	var t tail
	lr := newLineReader(f)
	for {
		b, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return tail{}, fmt.Errorf("%s: %w", path, err)
		}
		if !complete {
			t.partial = len(b)
			return t, nil
		}
		t.last, t.lastLine = append(t.last[:0], b...), lr.line
	}
}

// lineNumber counts the lines of path, for errors about its last line.
func lineNumber(path string) int {
	f, err := os.Open(path) // #nosec G304 -- one of the configured audit log's files
	if err != nil {
		return 0
	}
	defer f.Close()
	lr := newLineReader(f)
	for {
		if _, _, err := lr.next(); err != nil {
			return lr.line
		}
	}
}
