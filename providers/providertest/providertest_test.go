package providertest_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/postured/postured/providers/providertest"
)

// flawEnv tells a re-run of this test binary which flaw to give the toy.
const flawEnv = "PROVIDERTEST_TOY_FLAW"

// TestToy runs the suite against the toy vendor: flawless, it must pass.
func TestToy(t *testing.T) {
	providertest.Run(t, toyHarness(flaw(os.Getenv(flawEnv))))
}

// TestChecksCatchFlaws re-runs one check of TestToy in a child process
// against a toy with one behaviour removed, and expects that check, and
// only the subtest meant to see it, to fail.
func TestChecksCatchFlaws(t *testing.T) {
	if os.Getenv(flawEnv) != "" {
		t.Skip("a child run")
	}
	tests := []struct {
		flaw  flaw
		check string // subtest of TestToy, as go test prints it
	}{
		{noRefresh, "token_refresh_on_401/revoked_token_is_refreshed_once"},
		{refreshLoop, "token_refresh_on_401/401_after_a_refresh_is_an_error"},
		{logsSecret, "secrets_never_leak/success"},
		{unwrappedCancel, "context_cancellation/lookup_cancelled_in_flight"},
		{unwrappedCancel, "context_cancellation/list_cancelled_in_flight"},
		{leaksGoroutine, "context_cancellation"},
		{noRetries, "rate_limits_and_retries/429_is_retried_after_Retry-After"},
		{noRetries, "rate_limits_and_retries/5xx_is_retried"},
		{ignoresRetryAfter, "rate_limits_and_retries/429_is_retried_after_Retry-After"},
		{ignoresRetryAfter, "rate_limits_and_retries/429_longer_than_retry_wait_max_is_handed_back"},
		{takesMalformed, "rate_limits_and_retries/malformed_answer_is_an_error"},
		{silentlyUnsupports, "unsupported_kinds/mac"},
		{callPerValue, "calls_per_batch/serial"},
		{wrongIDs, "lookup_by_kind/serial"},
		{wrongIDs, "lookup_by_kind/list"},
		{failsWholeChunk, "rejected_value_fails_only_itself/serial"},
	}
	for _, tc := range tests {
		t.Run(string(tc.flaw)+": "+tc.check, func(t *testing.T) {
			pattern := "^TestToy$"
			for _, part := range strings.Split(tc.check, "/") {
				pattern += "/^" + regexp.QuoteMeta(part) + "$"
			}
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+pattern, "-test.count=1")
			cmd.Env = append(os.Environ(), flawEnv+"="+string(tc.flaw))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the check passed a toy that %s:\n%s", tc.flaw, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestToy/"+tc.check) {
				t.Fatalf("the run failed, but not in the check:\n%s", out)
			}
		})
	}
}
