package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/audit"
	"github.com/postured/postured/internal/auditlog"
)

// replayed is one replayed answer as --json prints it.
type replayed struct {
	// Record is the line as logged: the answer and its inputs.
	Record audit.Record `json:"record"`
	// Recomputed is the explanation FoldRecorded gives for the inputs.
	Recomputed  aggregate.Explanation `json:"recomputed"`
	Reproduced  bool                  `json:"reproduced"`
	Differences []string              `json:"differences"`
	// ConfigChanged, with -c, says whether the config now differs from the
	// one that answered.
	ConfigChanged *bool `json:"config_changed,omitempty"`
}

// replayedCycle is --json without --device-id.
type replayedCycle struct {
	At         time.Time  `json:"at"`
	Replayed   int        `json:"replayed"`
	Reproduced int        `json:"reproduced"`
	Answers    []replayed `json:"answers"`
}

// cmdReplay is `postured replay [--device-id X] [--at TIME] (--dir DIR | -c FILE) [--json]`.
func cmdReplay(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := newFlags("replay")
	deviceID := fs.String("device-id", "", "the Cloudflare device_id; without it, every device answered by --at")
	atFlag := fs.String("at", "", "RFC 3339 time: replay the answer in force then (the last at or before it); default now")
	dir := fs.String("dir", "", "directory holding the audit log (instead of -c)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("replay: unexpected argument %q", fs.Arg(0))
	}
	at := time.Now()
	if *atFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *atFlag)
		if err != nil {
			return fmt.Errorf("replay: --at: want an RFC 3339 time such as 2026-12-01T09:14:00Z: %w", err)
		}
		at = t
	}
	files, currentHash, err := replayFiles(fs, *file, *dir)
	if err != nil {
		return err
	}
	// A broken chain means the inputs cannot be trusted: refuse rather
	// than replay from them.
	if _, err := audit.Verify(ctx, files...); err != nil {
		return fmt.Errorf("replay: the audit log fails verification, not replaying from it: %w", err)
	}
	var records []audit.Record
	if *deviceID != "" {
		r, ok, err := audit.Find(ctx, files, *deviceID, at)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if !ok {
			return fmt.Errorf("replay: no answer for device %q at or before %s in the audit log", *deviceID, at.UTC().Format(time.RFC3339))
		}
		records = []audit.Record{r}
	} else if records, err = audit.FindAll(ctx, files, at); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	out := make([]replayed, len(records))
	differ := 0
	for i, r := range records {
		rp, err := auditlog.Replay(r)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		out[i] = replayed{Record: r, Recomputed: rp.Recomputed.Explain(), Reproduced: len(rp.Differences) == 0, Differences: rp.Differences}
		if out[i].Differences == nil {
			out[i].Differences = []string{}
		}
		if currentHash != "" {
			changed := r.ConfigHash != currentHash
			out[i].ConfigChanged = &changed
		}
		if !out[i].Reproduced {
			differ++
		}
	}
	if err := printReplay(stdout, *deviceID != "", *asJSON, at, out); err != nil {
		return err
	}
	if differ > 0 {
		return fmt.Errorf("replay: %d of %d answers differ from their recomputation", differ, len(out))
	}
	return nil
}

// replayFiles finds the log from --dir or the config's audit.path, and the
// current config's hash when there is a config.
func replayFiles(fs *flag.FlagSet, file, dir string) ([]string, string, error) {
	switch {
	case file != "" && dir != "":
		return nil, "", errors.New("replay: give -c FILE or --dir DIR, not both")
	case dir != "":
		files, err := audit.FilesIn(dir)
		if err != nil {
			return nil, "", fmt.Errorf("replay: %w", err)
		}
		return files, "", nil
	case file == "":
		return nil, "", errors.New("replay: give -c FILE (its audit.path) or --dir DIR")
	}
	cfg, err := loadConfig(fs, file)
	if err != nil {
		return nil, "", err
	}
	if cfg.Audit.Path == "" {
		return nil, "", fmt.Errorf("replay: %s has no audit.path", file)
	}
	files, err := audit.Files(cfg.Audit.Path)
	if err != nil {
		return nil, "", fmt.Errorf("replay: %w", err)
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("replay: no audit log at %s", cfg.Audit.Path)
	}
	hash, err := cfg.Hash()
	if err != nil {
		return nil, "", err
	}
	return files, hash, nil
}

func printReplay(w io.Writer, one, asJSON bool, at time.Time, out []replayed) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if one {
			return enc.Encode(out[0])
		}
		c := replayedCycle{At: at.UTC(), Replayed: len(out), Answers: out}
		for _, r := range out {
			if r.Reproduced {
				c.Reproduced++
			}
		}
		return enc.Encode(c)
	}
	if one {
		return printReplayed(w, out[0])
	}
	reproduced := 0
	for _, r := range out {
		if r.Reproduced {
			reproduced++
			continue
		}
		fmt.Fprintf(w, "%s (answered %s): %s\n", r.Record.DeviceID, stamp(r.Record.Time), strings.Join(r.Differences, "; "))
	}
	_, err := fmt.Fprintf(w, "replayed the answers in force at %s: %d of %d reproduced\n", stamp(at), reproduced, len(out))
	return err
}

func printReplayed(w io.Writer, r replayed) error {
	rec, ex := r.Record, r.Recomputed
	fmt.Fprintf(w, "device:      %s\n", rec.DeviceID)
	fmt.Fprintf(w, "answered:    %s (request %s, audit seq %d)\n", rec.Time.UTC().Format(time.RFC3339Nano), dash(rec.RequestID), rec.Seq)
	fmt.Fprintf(w, "config:      %s", rec.ConfigHash)
	if r.ConfigChanged != nil && *r.ConfigChanged {
		fmt.Fprint(w, " (the config has changed since)")
	}
	id := rec.Identifiers
	fmt.Fprintf(w, "\nidentifiers: serial=%s mac=%s hostname=%s email=%s\n\n", dash(id.Serial), dash(id.MAC), dash(id.Hostname), dash(id.Email))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tRECORDED\tRECOMPUTED")
	fmt.Fprintf(tw, "score\t%d\t%d\n", rec.Score, ex.Score)
	fmt.Fprintf(tw, "s2s_id\t%q\t%q\n", rec.S2SID, ex.S2SID)
	fmt.Fprintf(tw, "decision\t%s\t%s\n", dash(rec.Decision), ex.Decision)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tWEIGHT\tPOLICY\tOUTCOME\tRECORD\tLAST SEEN\tSCORE\tRECOMPUTED\tCOUNTED\tREASON")
	for i, p := range rec.Providers {
		policy := "on_error=" + dash(p.OnError)
		if p.Required {
			policy += ",required"
		}
		if p.MaxLastSeen != "" {
			policy += ",max_last_seen=" + p.MaxLastSeen
		}
		d := ex.Providers[i]
		fmt.Fprintf(tw, "%s\t%g\t%s\t%s\t%s\t%s\t%d\t%d\t%t\t%s\n",
			p.Name, p.Weight, policy, p.Outcome, dash(p.RecordID), stamp(p.LastSeen), p.Score, d.Score, d.Counted, dash(p.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rec.Adjustments) > 0 {
		// Overrides and hysteresis hang on state outside the log: they are
		// applied as recorded, checked only to start from the fold.
		fmt.Fprintln(w, "\nadjustments (as recorded, after the fold):")
		for _, a := range rec.Adjustments {
			fmt.Fprintf(w, "  %s: %d -> %d  %s\n", a.Kind, a.From, a.To, a.Note)
		}
	}
	if r.Reproduced {
		_, err := fmt.Fprintln(w, "\nreproduced: the recorded inputs give the recorded answer")
		return err
	}
	_, err := fmt.Fprintf(w, "\nDIFFERS:\n  %s\n", strings.Join(r.Differences, "\n  "))
	return err
}
