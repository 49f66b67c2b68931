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

	"github.com/postured/postured/adjust"
	"github.com/postured/postured/internal/app"
)

const overrideUsage = "override: want `override add -c FILE (--serial S | --device-id ID | --email E) --score N --until TIME --reason TEXT`, " +
	"`override list -c FILE [--json]` or `override remove -c FILE (--serial S | --device-id ID | --email E)`"

// cmdOverride is `postured override add|list|remove`. Overrides added here
// live in the Redis of cache.redis_url, which every replica reads at each
// evaluation; with the memory backend add and remove fail, saying to use
// the config file's overrides:.
func cmdOverride(ctx context.Context, args []string, stdout io.Writer, now func() time.Time) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "list" && args[0] != "remove") {
		return errors.New(overrideUsage)
	}
	verb := args[0]
	fs, file := newFlags("override " + verb)
	var spec adjust.Spec
	var score int
	fs.StringVar(&spec.Serial, "serial", "", "the device's serial number")
	fs.StringVar(&spec.DeviceID, "device-id", "", "the device's Cloudflare device_id")
	fs.StringVar(&spec.Email, "email", "", "the user's email: every device of theirs")
	fs.IntVar(&score, "score", -1, "add: the score the device gets, 0..100")
	fs.StringVar(&spec.Until, "until", "", "add: when the override ends, RFC 3339 (2026-12-01T00:00:00Z)")
	fs.StringVar(&spec.Reason, "reason", "", `add: why ("loaner, ticket 123")`)
	asJSON := fs.Bool("json", false, "list: print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("override %s: unexpected argument %q", verb, fs.Arg(0))
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	if verb == "list" {
		return listOverrides(ctx, cfg, now(), *asJSON, stdout)
	}
	store, err := app.RuntimeOverrides(cfg)
	if err != nil {
		return fmt.Errorf("override %s: %w", verb, err)
	}
	defer store.Close()
	switch verb {
	case "add":
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "score" {
				spec.Score = &score
			}
		})
		o, probs := spec.Parse()
		if len(probs) > 0 {
			msgs := make([]string, len(probs))
			for i, p := range probs {
				msgs[i] = strings.TrimSpace("--" + strings.ReplaceAll(p.Field, "_", "-") + " " + p.Msg)
				if p.Field == "" {
					msgs[i] = strings.Replace(p.Msg, "serial, device_id, email", "--serial, --device-id, --email", 1)
				}
			}
			return fmt.Errorf("override add: %s", strings.Join(msgs, "; "))
		}
		if err := store.Add(ctx, o); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added: %s %s scores %d until %s (%s)\n", o.Kind, o.Value, o.Score, o.Until.Format(time.RFC3339), o.Reason)
		return nil
	default:
		key, err := spec.SelectorKey()
		if err != nil {
			return fmt.Errorf("override remove: %w", err)
		}
		found, err := store.Remove(ctx, key)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("override remove: no runtime override for %s (config file overrides are removed by editing the file)", strings.Replace(key, ":", " ", 1))
		}
		fmt.Fprintf(stdout, "removed: %s\n", strings.Replace(key, ":", " ", 1))
		return nil
	}
}

// listedOverride is one line of `override list`.
type listedOverride struct {
	adjust.Override
	Source string `json:"source"`
	Active bool   `json:"active"`
}

// listOverrides prints the config file's overrides and, with Redis, the
// runtime ones, expired ones marked.
func listOverrides(ctx context.Context, cfg *app.Config, now time.Time, asJSON bool, stdout io.Writer) error {
	var all []listedOverride
	for _, o := range cfg.ParsedOverrides() {
		all = append(all, listedOverride{o, adjust.SourceConfig, !o.Expired(now)})
	}
	if cfg.Cache.Backend == "redis" {
		store, err := app.RuntimeOverrides(cfg)
		if err != nil {
			return fmt.Errorf("override list: %w", err)
		}
		defer store.Close()
		rt, err := store.List(ctx)
		if err != nil {
			return err
		}
		for _, o := range rt {
			all = append(all, listedOverride{o, adjust.SourceRuntime, !o.Expired(now)})
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []listedOverride{}
		}
		return enc.Encode(all)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSELECTOR\tVALUE\tSCORE\tUNTIL\tSTATE\tREASON")
	for _, o := range all {
		state := "active"
		if !o.Active {
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", o.Source, o.Kind, o.Value, o.Score, o.Until.Format(time.RFC3339), state, o.Reason)
	}
	return tw.Flush()
}
