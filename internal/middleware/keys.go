package middleware

// Keys of our own in log lines, spelt one way in every component so that one
// Cloud Logging query follows a request through all of them. They are
// camelCase because the fields Cloud Logging defines beside them are
// (httpRequest.requestMethod, spanId, traceSampled): a line reads in one style.
const (
	// KeyComponent names the server that wrote the line: "frontend",
	// "gateway", "backend", "identity".
	KeyComponent = "component"
	// KeyRequestID is the request's id, the X-Request-Id every hop shares.
	KeyRequestID = "requestId"
	// KeyReason says why a request was answered as it was: a policy
	// decision, Envoy's response code details, an error code.
	KeyReason = "reason"
	// KeyPrincipal is the authenticated peer (a SPIFFE id from its client
	// certificate), as Istio's source.principal.
	KeyPrincipal = "principal"
	// KeyRequestPrincipal is the authenticated end user ("iss/sub" of the ID
	// token), as Istio's request.auth.principal.
	KeyRequestPrincipal = "requestPrincipal"
	// KeyError is the cause of a failure, for the operator only.
	KeyError = "error"
	// KeyHTTPRequest is the access log's LogEntry.httpRequest.
	// https://cloud.google.com/logging/docs/structured-logging#special-payload-fields
	KeyHTTPRequest = "httpRequest"
)
