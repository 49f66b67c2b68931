package cfpoll

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/postured/postured/internal/fleet"
)

// check reads an answer to batch as Cloudflare requires it,
// {"result":{"<device_id>":{"s2s_id":"…","score":N}}}, and returns the
// scores with every violation found: devices missing, repeated (a JSON
// object may repeat a key; a map decode would hide it) or not in the
// batch, a score that is not an integer in 0..100, an s2s_id that is not a
// string, and any key the protocol does not define.
func check(batch []fleet.CloudflareDevice, answer []byte) (map[string]int, []string) {
	sent := make(map[string]bool, len(batch))
	for _, d := range batch {
		sent[d.DeviceID] = true
	}
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	dec := json.NewDecoder(bytes.NewReader(answer))
	scores := make(map[string]int, len(batch))
	sawResult := false
	err := object(dec, func(key string) error {
		if key != "result" {
			problem("unexpected top-level key %q", key)
			return skip(dec)
		}
		sawResult = true
		err := object(dec, func(id string) error {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			switch _, dup := scores[id]; {
			case !sent[id]:
				problem("device %q was not in the batch", id)
			case dup:
				problem("device %q appears more than once in result", id)
			default:
				score, msgs := entry(raw)
				for _, m := range msgs {
					problem("device %q: %s", id, m)
				}
				scores[id] = score
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("result: %w", err)
		}
		return nil
	})
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("data after the answer object")
		}
	}
	if err != nil {
		return nil, append(problems, fmt.Sprintf("not a JSON answer object: %v", err))
	}
	if !sawResult {
		return nil, append(problems, `no "result" object`)
	}
	for _, d := range batch {
		if _, ok := scores[d.DeviceID]; !ok {
			problem("device %q missing from result", d.DeviceID)
		}
	}
	return scores, problems
}

// entry checks one device's answer and returns its score.
func entry(raw json.RawMessage) (int, []string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return 0, []string{fmt.Sprintf("entry %s is not an object", raw)}
	}
	var msgs []string
	score := 0
	if s, ok := fields["score"]; !ok {
		msgs = append(msgs, "no score")
	} else if n, err := strconv.Atoi(string(s)); err != nil {
		msgs = append(msgs, fmt.Sprintf("score %s is not an integer", s))
	} else if n < 0 || n > 100 {
		msgs = append(msgs, fmt.Sprintf("score %d is out of range 0..100", n))
	} else {
		score = n
	}
	var id string
	if s, ok := fields["s2s_id"]; !ok {
		msgs = append(msgs, "no s2s_id")
	} else if len(s) == 0 || s[0] != '"' || json.Unmarshal(s, &id) != nil {
		msgs = append(msgs, fmt.Sprintf("s2s_id %s is not a string", s))
	}
	for k := range fields {
		if k != "score" && k != "s2s_id" {
			msgs = append(msgs, fmt.Sprintf("unexpected field %q", k))
		}
	}
	return score, msgs
}

// object reads a JSON object from dec, calling member for each key with
// the decoder positioned at the key's value, which member must consume.
func object(dec *json.Decoder, member func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want an object, got %v", t)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if err := member(t.(string)); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing brace
	return err
}

// skip consumes one value.
func skip(dec *json.Decoder) error {
	var v json.RawMessage
	return dec.Decode(&v)
}
