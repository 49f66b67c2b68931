package jamfmock

import (
	"io"
	"net/http"
)

// MissingRoute is how a Jamf Pro server answers a request for an endpoint
// it does not have. Which answer a client gets depends on the release and
// on what sits in front of it; postured's issue 9 names all of these for
// the versioned token path on servers older than it ([INF] which release
// gives which), so a client's fallback must not hinge on one of them.
type MissingRoute int

const (
	// Served means the endpoint exists.
	Served MissingRoute = iota
	// MissingNotFound is Jamf's 404 error body.
	MissingNotFound
	// MissingMethodNotAllowed is a 405, as when the path matches a route
	// of another method.
	MissingMethodNotAllowed
	// MissingUnauthorized is the API's bearer-token filter answering 401
	// before any route is matched: {"httpStatus":401,"errors":[]}.
	MissingUnauthorized
	// MissingLoginPage is 200 with the web app's HTML login page.
	MissingLoginPage
	// MissingRedirect is a 302 to the login page.
	MissingRedirect
)

// loginPage is the start of what Jamf Pro's web app serves to a browser.
const loginPage = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Jamf Pro Login</title>\n</head>\n<body class=\"login\">\n</body>\n</html>\n"

func (m MissingRoute) answer(w http.ResponseWriter) {
	switch m {
	case MissingMethodNotAllowed:
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed)
	case MissingUnauthorized:
		writeError(w, http.StatusUnauthorized)
	case MissingLoginPage:
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		_, _ = io.WriteString(w, loginPage)
	case MissingRedirect:
		w.Header().Set("Location", "/index.html")
		w.WriteHeader(http.StatusFound)
	default:
		writeError(w, http.StatusNotFound)
	}
}

// headerBytes is the size of r's request line and headers as they came
// over the wire (Go keeps Host apart from the other headers).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// headerTooLarge is Tomcat's answer to a request line and headers over
// maxHttpHeaderSize: 400 with its HTML error report ("Request header is
// too large").
func headerTooLarge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "<!doctype html><html lang=\"en\"><head><title>HTTP Status 400 – Bad Request</title></head>"+
		"<body><h1>HTTP Status 400 – Bad Request</h1><p><b>Message</b> Request header is too large</p></body></html>")
}
