// Package gateway is the one-machine stand-in for the Istio ingress gateway in
// front of the API. It renders the very kustomize base in istio/ (the single
// source of truth for gateway policy), decodes every document strictly into
// the upstream Istio Go types, selects what applies to one gateway workload by
// Istio's rules, and serves it with Istio/Envoy behaviour: TLS per
// Gateway.servers[].tls, JWT authentication (package authn), authorization
// (package authz), routing per VirtualService, Istio's default path
// normalization, and Envoy's status codes and bodies.
//
// What Envoy's codecs refuse before any filter and net/http lets through is
// refused first, with Envoy's answer (codec.go): headers over 60 KiB or 100
// lines, a "#" in the path, an HTTP/2 :path in absolute form.
//
// Differences known and kept, all in net/http's codec: a request with both
// Content-Length and Transfer-Encoding, which Envoy answers 400, is read as
// chunked, answered by its route, and its connection closed (internal/serve
// does that for every server of the project, and says why it is as safe);
// headers beyond net/http's own limit (64 KiB) get net/http's 431 body, and
// over HTTP/2 a 431 where Envoy resets the stream; an obs-folded header line
// is unfolded with one space, where Envoy keeps the continuation's
// whitespace.
//
// An AuthorizationPolicy with action CUSTOM is served as Envoy's ext_authz
// filter with the envoyExtAuthzGrpc provider the mesh config names
// (extauthz.go, LoadMeshConfig of deploy/istio/operator.yaml): asked first,
// before jwt_authn, its answer applied as Envoy applies it.
//
// The engines decide; this package only translates their decisions into HTTP.
// It is a conformance-tested stand-in for local runs and tests, not a
// replacement for Istio: production runs real Istio on GKE.
package gateway
