package jamfmock

import (
	"net/http"
	"slices"
)

// Release is the Jamf Pro server the mock plays: the version it reports
// and which computer inventory API versions it serves. Servers in the field
// differ, so a client has to find out rather than assume:
//
//   - /api/v1/computers-inventory arrived in 10.39.0 ("Beginning in Jamf Pro
//     v10.39.0, Jamf introduced the computer-inventory endpoints",
//     https://developer.jamf.com/jamf-pro/docs/deprecation-of-classic-api-computer-inventory-endpoints)
//     and was the only version through the 10.x line (the 10.49.0 changelog
//     still changes /v1/computers-inventory only,
//     https://developer.jamf.com/jamf-pro/changelog/10490-changes);
//   - v1 was deprecated on 2025-06-30 in favour of v3 (macadmins/jamf-pro-sdk-python#79);
//   - v3 arrived in 11.23.0 (https://developer.jamf.com/jamf-pro/changelog/11230-additions);
//   - v4 arrived in 11.30.0, which deprecated v3 in its favour
//     (https://developer.jamf.com/jamf-pro/changelog/11300-additions and
//     .../11300-deprecations); v4 renames general.lastContactTime to
//     general.lastCheckIn (sort fields of
//     https://developer.jamf.com/platform-api/reference/get_v4-computers-inventory-1).
//
// v1, v2 and v3 render the same fields the mock models; see
// computerVersion for v4's.
type Release struct {
	// Version is what GET /api/v1/jamf-pro-version answers, in Jamf's
	// "<semver>-t<build timestamp>" form.
	Version string
	// ComputerInventory are the computer inventory API versions served
	// ("v1".."v4"); every other version answers 404.
	ComputerInventory []string
}

// Releases to test clients against. The version strings follow the format
// of a real answer ("10.50.0-t1693149930" in ruby-jss's JamfProVersion
// schema, generated from such a server,
// https://www.rubydoc.info/gems/ruby-jss/Jamf/OAPISchemas/JamfProVersion).
var (
	// ReleaseV1Only is an on-premises server from the 10.x line: v1 only.
	ReleaseV1Only = Release{Version: "10.48.0-t1689870896", ComputerInventory: []string{"v1"}}
	// ReleaseV3 is 11.23 to 11.29: v1 (deprecated), v2 and v3.
	ReleaseV3 = Release{Version: "11.29.1-t1756392217", ComputerInventory: []string{"v1", "v2", "v3"}}
	// ReleaseV4 is 11.30 and later as the mock plays it: v3 (deprecated)
	// and v4. The reference pages of 11.32 still list v2 too; leaving it
	// and v1 out keeps clients from leaning on versions that are on their
	// way out.
	ReleaseV4 = Release{Version: "11.32.0-t1762437600", ComputerInventory: []string{"v3", "v4"}}
	// ReleaseV4Only is a future server that has removed v3 as well.
	ReleaseV4Only = Release{Version: "11.40.0-t1780000000", ComputerInventory: []string{"v4"}}
)

// serves reports whether the release has computer inventory version v.
func (r Release) serves(v string) bool { return slices.Contains(r.ComputerInventory, v) }

// jamfProVersion serves GET /api/v1/jamf-pro-version: {"version": "..."},
// for any valid token (the endpoint needs no privilege).
// https://developer.jamf.com/jamf-pro/reference/get_v1-jamf-pro-version
func (s *Server) jamfProVersion(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("jamfProVersion")
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, object{{"version", s.opts.Release.Version}})
}
