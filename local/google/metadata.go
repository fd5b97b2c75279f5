package google

import (
	"fmt"
	"html"
	"net/http"
	"strings"
)

// MetadataHandler is the metadata server's v1 API, to be served at the root
// of the host GCE_METADATA_HOST names:
//
//	GET /computeMetadata/v1/instance/service-accounts/{default|email}/identity?audience=…[&format=full]
//	GET /computeMetadata/v1/instance/service-accounts/{default|email}/email
//	GET /computeMetadata/v1/project/project-id
//
// Every request must carry "Metadata-Flavor: Google", which makes a request
// forged through an open redirect or a URL fetcher fail; without it the
// answer is Compute Engine's: 403 and an HTML page saying "Missing
// Metadata-Flavor:Google header." (the page as curl shows it in
// googleapis/google-api-dotnet-client#1409 and GKE's metadata-concealment
// walkthrough; every answer carries "Metadata-Flavor: Google" and "Server:
// Metadata Server for VM", as in googleapis/gcp-metadata#657).
func (g *Google) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Metadata-Flavor", "Google")
		h.Set("Server", "Metadata Server for VM")
		h.Set("X-Content-Type-Options", "nosniff")
		status, body := g.metadata(r)
		if status != http.StatusOK {
			h.Set("Content-Type", "text/html; charset=UTF-8")
			body = errorPage(status, r.URL.Path, body)
		} else {
			h.Set("Content-Type", "application/text")
		}
		g.log.DebugContext(r.Context(), "metadata request", "method", r.Method, "path", r.URL.Path, "status", status)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})
}

// metadata answers one request: the status and, on success, the value; on
// failure the reason shown on the error page.
func (g *Google) metadata(r *http.Request) (int, string) {
	if r.Header.Get("Metadata-Flavor") != "Google" {
		return http.StatusForbidden, "Missing Metadata-Flavor:Google header."
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return http.StatusMethodNotAllowed, "Method not allowed."
	}
	path := strings.TrimPrefix(r.URL.Path, MetadataPrefix)
	if path == "project/project-id" {
		return http.StatusOK, g.project
	}
	rest, ok := strings.CutPrefix(path, "instance/service-accounts/")
	if !ok {
		return http.StatusNotFound, "The requested URL was not found on this server."
	}
	name, leaf, ok := strings.Cut(rest, "/")
	a := g.accounts[name]
	if name == "default" {
		a = g.def
	}
	// The metadata server knows only the accounts attached to the instance:
	// the default one, by alias or by email.
	if !ok || a != g.def {
		return http.StatusNotFound, "The requested URL was not found on this server."
	}
	switch leaf {
	case "email":
		return http.StatusOK, a.email
	case "identity":
		aud := r.URL.Query().Get("audience")
		if aud == "" {
			// Compute Engine's words for an identity request without one.
			return http.StatusBadRequest, "non-empty audience parameter required"
		}
		tok, err := g.sign(a, aud, tokenShape{email: true, full: r.URL.Query().Get("format") == "full"}, g.now())
		if err != nil {
			g.log.ErrorContext(r.Context(), "signing an ID token", "error", err.Error())
			return http.StatusInternalServerError, "Internal error."
		}
		return http.StatusOK, tok
	}
	return http.StatusNotFound, "The requested URL was not found on this server."
}

// errorPage is the shape of the metadata server's HTML error pages.
func errorPage(status int, path, reason string) string {
	msg := html.EscapeString(reason)
	if status == http.StatusForbidden {
		msg = "Your client does not have permission to get URL <code>" + html.EscapeString(path) +
			"</code> from this server. " + msg
	}
	return fmt.Sprintf("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error %d (%s)!!1</title>\n"+
		"  <p><b>%d.</b> <ins>That’s an error.</ins>\n  <p>%s\n",
		status, http.StatusText(status), status, msg)
}
