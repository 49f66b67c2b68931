package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStatusPageEndToEnd: the real serve path serves /status behind the
// Access check; after a batch, the page shows the static provider's
// records and the batch, and its search gives the score /posture gave.
func TestStatusPageEndToEnd(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 50)
	in := startPostured(t, strings.ReplaceAll(e2eConfig, "%DIR%", dir))
	token, err := in.issuer.AppToken(testAUD, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := in.do(t, http.MethodGet, "/status", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", code, body)
	}
	code, body := in.post(t, "/posture", token, batch(0, 40, nil))
	if code != http.StatusOK {
		t.Fatalf("posture: %d %s", code, body)
	}
	var reply postureReply
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	code, page := in.do(t, http.MethodGet, "/status?serial=ser00033", token, nil)
	if code != http.StatusOK {
		t.Fatalf("status: %d %s", code, page)
	}
	for _, want := range []string{
		"<td>inventory</td><td>static</td><td>file</td>\n<td class=\"num\">50</td>",
		`<td class="num">40</td>`, // the batch's devices
		fmt.Sprintf(`<span class="score" id="device-score">%d</span>`, reply.Result["cf-33"].Score),
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}
