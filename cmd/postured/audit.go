package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/postured/postured/audit"
)

// cmdAudit is `postured audit verify [--head HASH] FILE...`.
func cmdAudit(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("audit: want `audit verify [--head HASH] FILE...`")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	head := fs.String("head", "", "hash the last line must have (a head recorded elsewhere); catches an edited last line or deleted tail")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("audit verify: give the log's files, oldest first")
	}
	sum, err := audit.Verify(ctx, fs.Args()...)
	if err != nil {
		return err
	}
	if *head != "" && sum.Lines == 0 {
		return fmt.Errorf("audit verify: no lines, but head %s was recorded", *head)
	}
	if *head != "" && sum.Head != *head {
		return fmt.Errorf("%s:%d: the last line's hash is %s, not the recorded head %s: it was edited, or lines after it deleted", sum.LastFile, sum.LastLine, sum.Head, *head)
	}
	fmt.Fprintf(stdout, "ok: %d lines, chain intact\n", sum.Lines)
	if sum.Lines == 0 {
		return nil
	}
	fmt.Fprintf(stdout, "head: seq %d %s\n", sum.LastSeq, sum.Head)
	if sum.FirstSeq > 1 {
		fmt.Fprintf(stdout, "note: the chain starts at seq %d; earlier lines are in files not given or removed by retention\n", sum.FirstSeq)
	}
	for _, b := range sum.Breaks {
		fmt.Fprintf(stdout, "note: %s:%d: partial line (%d bytes) from a crash mid-write, skipped by the break line after it\n", b.File, b.Line, b.Bytes)
	}
	return nil
}
