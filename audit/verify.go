package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Problem is the first place where a log fails verification.
type Problem struct {
	File   string
	Line   int
	Reason string
}

func (p *Problem) Error() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason) }

// Summary describes a log that verified.
type Summary struct {
	Files int
	// Lines counts the chained lines, break lines included and the partial
	// lines they skip excluded.
	Lines int
	// FirstSeq is the seq of the first line: 1 if the chain starts at
	// genesis; more if earlier files were not given or were removed by
	// retention (or lines were deleted from the start: see the package doc).
	FirstSeq uint64
	// LastSeq and Head are the seq and hash of the last line, to compare
	// with a head recorded from Writer.Head; LastFile and LastLine locate it.
	LastSeq  uint64
	Head     string
	LastFile string
	LastLine int
	// Breaks are the partial lines left by crashes, each followed by the
	// break line that names it.
	Breaks []Break
}

// Verify walks the files in the order given (oldest first, as Files lists
// them) and checks the chain. It returns a *Problem for the first line that
// breaks it, or another error if a file cannot be read. A log with no
// lines verifies.
func Verify(ctx context.Context, paths ...string) (Summary, error) {
	it := &lines{paths: paths}
	defer it.close()
	var sum Summary
	var pp, p *item // the last two chained lines
	cur, err := it.next()
	if err != nil {
		return Summary{}, fmt.Errorf("audit: verify: %w", err)
	}
	afterPartial := false
	for cur != nil {
		if err := ctx.Err(); err != nil {
			return Summary{}, fmt.Errorf("audit: verify: %w", err)
		}
		nx, err := it.next()
		if err != nil {
			return Summary{}, fmt.Errorf("audit: verify: %w", err)
		}
		if !cur.complete {
			if nx == nil || nx.err != nil || nx.e.Break == nil || nx.e.Break.Line != cur.line || nx.e.Break.Bytes != len(cur.raw) {
				return Summary{}, cur.problem("truncated line: no newline at the end (a partial write or a cut file) and no break line after it")
			}
			sum.Breaks = append(sum.Breaks, Break{File: cur.file, Line: cur.line, Bytes: len(cur.raw)})
			afterPartial = true
			cur = nx
			continue
		}
		if cur.err != nil {
			return Summary{}, cur.problem("not an audit record (edited or inserted): " + cur.err.Error())
		}
		if cur.e.Break != nil && !afterPartial {
			return Summary{}, cur.problem("break line without the partial line it names before it")
		}
		afterPartial = false
		if prob := check(pp, p, cur, nx); prob != nil {
			return Summary{}, prob
		}
		if p == nil {
			sum.FirstSeq = cur.e.Seq
		}
		sum.Lines++
		pp, p, cur = p, cur, nx
	}
	sum.Files = it.opened
	if p != nil {
		sum.LastSeq, sum.Head, sum.LastFile, sum.LastLine = p.e.Seq, p.hash, p.file, p.line
	}
	return sum, nil
}

// check finds what is wrong with cur, which follows p (after pp) and comes
// before nx, and blames the line that is out of place.
func check(pp, p, cur, nx *item) *Problem {
	seq, prev := cur.e.Seq, cur.e.Prev
	if p == nil {
		if (seq == 1) != (prev == Genesis) {
			return cur.problem(fmt.Sprintf("seq %d with prev %s: only seq 1 starts from genesis (edited)", seq, prev))
		}
		return nil
	}
	switch {
	case prev == p.hash && seq == p.e.Seq+1:
		return nil
	case prev == p.hash:
		return cur.problem(fmt.Sprintf("seq %d follows seq %d (edited)", seq, p.e.Seq))
	case pp != nil && prev == pp.hash:
		return p.problem(fmt.Sprintf("inserted: the next line (%s:%d) chains to the line before this one", cur.file, cur.line))
	case nx != nil && nx.err == nil && nx.complete && prev == nx.hash:
		return cur.problem(fmt.Sprintf("out of order: seq %d comes before seq %d, the line it follows", seq, nx.e.Seq))
	case seq > p.e.Seq+1:
		return cur.problem(fmt.Sprintf("seq %d follows seq %d: %d line(s) before this one deleted or moved", seq, p.e.Seq, seq-p.e.Seq-1))
	case seq == p.e.Seq+1 && nx != nil && nx.err == nil && nx.e.Seq == seq+1 && nx.e.Prev != cur.hash:
		// Neither neighbour chains to cur: cur's own bytes changed.
		return cur.problem("edited: its prev is not the hash of the line before it, nor its hash the prev of the next line")
	case seq == p.e.Seq+1:
		return p.problem(fmt.Sprintf("edited: its hash is not the prev of the next line (%s:%d)", cur.file, cur.line))
	default:
		return cur.problem(fmt.Sprintf("seq %d follows seq %d: inserted, duplicated or moved", seq, p.e.Seq))
	}
}

// item is one line of the walk.
type item struct {
	file     string
	line     int
	raw      []byte // without the newline
	complete bool   // it had a newline
	hash     string
	e        entry
	err      error // why it does not parse
}

func (it *item) problem(reason string) *Problem {
	return &Problem{File: it.file, Line: it.line, Reason: reason}
}

// lines walks the lines of several files in order.
type lines struct {
	paths  []string
	opened int
	f      *os.File
	lr     *lineReader
}

// next returns the next line, or nil after the last.
func (l *lines) next() (*item, error) {
	for {
		if l.lr == nil {
			if l.opened == len(l.paths) {
				return nil, nil
			}
			f, err := os.Open(l.paths[l.opened])
			if err != nil {
				return nil, err
			}
			l.f, l.lr = f, newLineReader(f)
			l.opened++
		}
		b, complete, err := l.lr.next()
		if errors.Is(err, io.EOF) {
			l.close()
			continue
		}
		name := l.paths[l.opened-1]
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		it := &item{file: name, line: l.lr.line, raw: append([]byte(nil), b...), complete: complete, hash: lineHash(b)}
		it.e, it.err = parseEntry(b)
		return it, nil
	}
}

func (l *lines) close() {
	if l.f != nil {
		_ = l.f.Close() // read-only; a close error cannot lose data
		l.f, l.lr = nil, nil
	}
}
