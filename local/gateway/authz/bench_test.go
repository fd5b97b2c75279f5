package authz

import (
	"fmt"
	"net/http"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
)

// BenchmarkDecide measures one decision against an ALLOW policy of n rules
// shaped like the project's (source principals and request principals, a
// path prefix, a claim condition). The request passes every check but the
// path, so every rule is evaluated to the end before the deny: the worst
// case. Figures: docs/performance.md.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("%d rules", n), func(b *testing.B) {
			var rules []*securityv1beta1.Rule
			for i := range n {
				rules = append(rules, &securityv1beta1.Rule{
					From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{
						RequestPrincipals: []string{issuer + "/*"},
						Principals:        []string{frontend},
					}}},
					To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{
						Methods: []string{"GET", "POST"},
						Paths:   []string{fmt.Sprintf("/api/v%d/*", i)},
					}}},
					When: []*securityv1beta1.Condition{{Key: "request.auth.claims[email_verified]", NotValues: []string{"false"}}},
				})
			}
			e, err := New([]*securityv1.AuthorizationPolicy{{
				ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "istio-ingress"},
				Spec:       securityv1beta1.AuthorizationPolicy{Rules: rules},
			}})
			if err != nil {
				b.Fatal(err)
			}
			r := Request{Method: "GET", Host: "api.internal.example", Path: "/api/unversioned/secure.json", Headers: http.Header{},
				Principal: frontend, RequestPrincipal: issuer + "/u1",
				Claims: map[string]any{"iss": issuer, "sub": "u1", "email_verified": "true"}}
			if d := e.Decide(r); d.Allow {
				b.Fatalf("want no rule to match, got %+v", d)
			}
			b.ReportAllocs()
			cpu := cputime.Used(b)
			for b.Loop() {
				if e.Decide(r).Allow {
					b.Fatal("allowed")
				}
			}
			// CPU time per op as well as wall time: the machine is shared,
			// and CPU time is what other processes' load does not inflate.
			cputime.ReportPerOp(b, cpu)
		})
	}
}
