// Package evaluate implements Cloudflare Access External Evaluation: POST
// /evaluate verifies the identity token Access signs for every login,
// decides allow or deny with the configured rules (identity, device
// posture, time of day), and answers with a JWT signed by postured's own
// key ring, which GET /keys publishes for Access to verify it.
//
// The wire protocol is section B of docs/cloudflare-protocols.md: an
// unverifiable request is refused with 403 and nothing is signed; a deny is a
// signed token with "success": false; the nonce is echoed verbatim.
package evaluate

import (
	"context"
	"time"
)

// KeySet verifies a compact JWS against the team's Access keys, choosing
// the key by kid and refetching the team's certs on an unknown kid. It is
// satisfied by *access.KeySet and by go-oidc's *oidc.RemoteKeySet.
type KeySet interface {
	VerifySignature(ctx context.Context, jwt string) ([]byte, error)
}

// PostureSource gives the posture postured computed for a Cloudflare
// device_id, remembered from the last batch or recomputed live. ok is false
// when postured knows nothing about the device.
type PostureSource interface {
	DevicePosture(ctx context.Context, deviceID string) (Posture, bool)
}

// Posture is one device's score as the posture endpoint computed it.
type Posture struct {
	// Score is the final 0-100 score.
	Score int
	// Providers holds the score of every provider that counted towards
	// Score, by provider name.
	Providers map[string]int
	// At is when the score was computed.
	At time.Time
}
