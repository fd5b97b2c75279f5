package authz_test

import (
	"fmt"
	"net/http"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"

	"github.com/acme/cloudrun-istio-gke/local/gateway/authz"
)

// The project's gateway policy: health checks open, the rest of /api/ for a
// signed-in user calling through the frontend's certificate.
func ExampleEngine_Decide() {
	var p securityv1.AuthorizationPolicy
	if err := yaml.UnmarshalStrict([]byte(`
metadata: {name: api-gateway, namespace: istio-ingress}
spec:
  rules:
  - to: [{operation: {paths: [/api/healthz]}}]
  - from:
    - source:
        requestPrincipals: ["https://securetoken.google.com/demo-acme/*"]
        principals: [acme.internal/ns/frontend/sa/frontend]
    to: [{operation: {paths: ["/api/*"]}}]
`), &p); err != nil {
		panic(err)
	}
	engine, err := authz.New([]*securityv1.AuthorizationPolicy{&p})
	if err != nil {
		panic(err)
	}

	anonymous := authz.Request{Method: "GET", Host: "api.internal.example", Path: "/api/secure.json", Headers: http.Header{}}
	fmt.Println(engine.Decide(anonymous))

	signedIn := anonymous
	signedIn.Principal = "acme.internal/ns/frontend/sa/frontend"
	signedIn.RequestPrincipal = "https://securetoken.google.com/demo-acme/user-1"
	fmt.Println(engine.Decide(signedIn))
	// Output:
	// {false rbac_access_denied_matched_policy[none] }
	// {true allowed by ns[istio-ingress]-policy[api-gateway]-rule[1] istio-ingress/api-gateway}
}
