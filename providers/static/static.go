// Package static is the provider backed by an inventory file the operator
// maintains (YAML or CSV): for assets no MDM knows, for tests, and for a
// first deployment before any vendor is wired. The file is re-read when it
// changes; a broken edit keeps the last good inventory.
package static

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// Config is the `type: static` provider section.
type Config struct {
	providers.Common `yaml:",inline"`
	// File is the inventory, YAML (any extension but .csv) or CSV.
	File string `yaml:"file"`
	// ReloadInterval is how often the file is checked for changes.
	ReloadInterval conf.Duration `yaml:"reload_interval,omitempty"`
}

// Defaults implements providers.Config.
func (c *Config) Defaults() {
	c.Common.Defaults()
	if c.ReloadInterval == 0 {
		c.ReloadInterval = conf.Duration(5 * time.Second)
	}
}

// Validate implements providers.Config. The file itself is checked by New.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.File == "" {
		errs = append(errs, errors.New("file is required"))
	}
	if c.Mode == providers.ModeSync {
		errs = append(errs, errors.New("mode: sync does not apply: the inventory file is always held in memory"))
	}
	if c.ReloadInterval < conf.Duration(100*time.Millisecond) {
		errs = append(errs, errors.New("reload_interval must be at least 100ms"))
	}
	return errors.Join(errs...)
}

// Provider answers lookups from the inventory file.
type Provider struct {
	file     string
	interval time.Duration
	logger   *slog.Logger

	idx     atomic.Pointer[providers.Index]
	mu      sync.Mutex
	status  providers.Status
	modTime time.Time
	size    int64
}

// New loads the inventory; a missing or malformed file is an error naming
// the file and line.
func New(cfg *Config, deps providers.Deps) (*Provider, error) {
	p := &Provider{file: cfg.File, interval: time.Duration(cfg.ReloadInterval), logger: deps.Logger}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

// Lookup implements the aggregator's Provider from memory.
func (p *Provider) Lookup(_ context.Context, q providers.Query) ([]providers.Record, error) {
	return p.idx.Load().Lookup(q), nil
}

// Local tells the aggregator not to cache this provider's answers.
func (p *Provider) Local() bool { return true }

// Status reports the last load.
func (p *Provider) Status() providers.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Run re-reads the file whenever its size or modification time changes,
// until ctx ends.
func (p *Provider) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(p.file)
		p.mu.Lock()
		changed := err != nil || !fi.ModTime().Equal(p.modTime) || fi.Size() != p.size
		p.mu.Unlock()
		if !changed {
			continue
		}
		if err := p.load(); err != nil {
			p.logger.Error("inventory reload failed, keeping previous inventory", "error", err)
			continue
		}
		p.logger.Info("inventory reloaded", "records", p.idx.Load().Len())
	}
}

func (p *Provider) load() error {
	fi, err := os.Stat(p.file)
	if err == nil {
		var data []byte
		data, err = os.ReadFile(p.file)
		if err == nil {
			var recs []providers.Record
			recs, err = Parse(p.file, data)
			if err == nil {
				ix := providers.NewIndex(recs)
				p.idx.Store(ix)
				p.mu.Lock()
				p.status = providers.Status{Ready: true, LastSuccess: time.Now(), Records: ix.Len()}
				p.modTime, p.size = fi.ModTime(), fi.Size()
				p.mu.Unlock()
				return nil
			}
		}
	}
	err = fmt.Errorf("static: %w", err)
	p.mu.Lock()
	p.status.LastError = err.Error()
	if fi != nil {
		// Do not retry the same broken content every tick.
		p.modTime, p.size = fi.ModTime(), fi.Size()
	}
	p.mu.Unlock()
	return err
}

// Parse reads an inventory: CSV when name ends in .csv, YAML otherwise.
// Errors name the file and line.
func Parse(name string, data []byte) ([]providers.Record, error) {
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		return parseCSV(name, data)
	}
	return parseYAML(name, data)
}

type yamlDevice struct {
	ID           string    `yaml:"id"`
	SerialNumber string    `yaml:"serial_number"`
	MACAddresses []string  `yaml:"mac_addresses"`
	Hostname     string    `yaml:"hostname"`
	Email        string    `yaml:"email"`
	Score        *int      `yaml:"score"`
	LastSeen     time.Time `yaml:"last_seen"`
}

func parseYAML(name string, data []byte) ([]providers.Record, error) {
	var doc struct {
		Devices []yaml.Node `yaml:"devices"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty inventory file (want a devices: list)", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	recs := make([]providers.Record, 0, len(doc.Devices))
	ids := make(map[string]int)
	for i := range doc.Devices {
		n := &doc.Devices[i]
		var d yamlDevice
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: line %d: each device must be a mapping", name, n.Line)
		}
		if err := checkLastSeen(n); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := conf.DecodeStrict(n, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rec, err := toRecord(d.ID, d.SerialNumber, d.MACAddresses, d.Hostname, d.Email, d.Score, d.LastSeen)
		if err == nil {
			err = checkDuplicate(ids, strings.TrimSpace(d.ID), n.Line)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, n.Line, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// checkLastSeen validates last_seen with its own line: yaml.v3 reports time
// parsing errors without a position.
func checkLastSeen(n *yaml.Node) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "last_seen" && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			if !parsesAsTime(v.Value) {
				return fmt.Errorf("line %d: last_seen %q is not an RFC 3339 time like 2026-11-20T10:00:00Z", v.Line, v.Value)
			}
		}
	}
	return nil
}

// parsesAsTime accepts the timestamp forms yaml.v3 decodes into time.Time.
func parsesAsTime(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

var csvHeader = []string{"id", "serial_number", "mac_addresses", "hostname", "email", "score", "last_seen"}

func parseCSV(name string, data []byte) ([]providers.Record, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // Excel's "CSV UTF-8" BOM
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(csvHeader)
	r.TrimLeadingSpace = true
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: line 1: header: %w", name, err)
	}
	for i := range head {
		head[i] = strings.TrimSpace(head[i])
	}
	if strings.Join(head, ",") != strings.Join(csvHeader, ",") {
		return nil, fmt.Errorf("%s: line 1: header must be %s", name, strings.Join(csvHeader, ","))
	}
	var recs []providers.Record
	ids := make(map[string]int)
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := r.FieldPos(0)
		var score *int
		if s := strings.TrimSpace(row[5]); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("%s: line %d: score %q is not an integer", name, line, s)
			}
			score = &n
		}
		var seen time.Time
		if s := strings.TrimSpace(row[6]); s != "" {
			if seen, err = time.Parse(time.RFC3339, s); err != nil {
				return nil, fmt.Errorf("%s: line %d: last_seen %q is not RFC 3339", name, line, s)
			}
		}
		var macs []string
		if s := strings.TrimSpace(row[2]); s != "" {
			macs = strings.Split(s, ";")
		}
		rec, err := toRecord(row[0], row[1], macs, row[3], row[4], score, seen)
		if err == nil {
			err = checkDuplicate(ids, strings.TrimSpace(row[0]), line)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		recs = append(recs, rec)
	}
}

func checkDuplicate(ids map[string]int, id string, line int) error {
	if prev, dup := ids[id]; dup {
		return fmt.Errorf("id %q already used on line %d", id, prev)
	}
	ids[id] = line
	return nil
}

func toRecord(id, serial string, macs []string, hostname, email string, score *int, lastSeen time.Time) (providers.Record, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return providers.Record{}, errors.New("id is required")
	}
	if score == nil {
		return providers.Record{}, errors.New("score is required")
	}
	if *score < 0 || *score > 100 {
		return providers.Record{}, fmt.Errorf("score must be 0..100, got %d", *score)
	}
	for _, m := range macs {
		if _, ok := providers.NormalizeMAC(m); !ok {
			return providers.Record{}, fmt.Errorf("mac address %q is not a usable MAC", m)
		}
	}
	rec := providers.Record{
		ID: id, MACs: macs, LastSeen: lastSeen, Score: *score,
		Reason: "inventory score " + strconv.Itoa(*score),
	}
	if serial != "" {
		rec.Serials = []string{serial}
	}
	if hostname != "" {
		rec.Hostnames = []string{hostname}
	}
	if email != "" {
		rec.Emails = []string{email}
	}
	rec.Normalize()
	if rec.Serials == nil && rec.MACs == nil && rec.Hostnames == nil && rec.Emails == nil {
		return providers.Record{}, errors.New("device has no usable identifier (serial_number, mac_addresses, hostname or email)")
	}
	return rec, nil
}
