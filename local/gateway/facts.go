package gateway

import (
	"slices"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Audiences are the audiences the JWT rules for issuer accept, in the order
// istio/ lists them: what a caller must ask its token for.
func (rs *Resources) Audiences(issuer string) []string {
	var out []string
	for _, ra := range rs.RequestAuthentications {
		for _, r := range ra.Spec.GetJwtRules() {
			if r.GetIssuer() == issuer {
				for _, a := range r.GetAudiences() {
					if !slices.Contains(out, a) {
						out = append(out, a)
					}
				}
			}
		}
	}
	return out
}

// AllowedClaimValues are the values an ALLOW policy's conditions on
// request.auth.claims[claim] admit: for "email", the service accounts the
// machine rule lets in. Components that check the same thing themselves
// (the backend) take their list from here, so istio/ stays its one source.
func (rs *Resources) AllowedClaimValues(claim string) []string {
	key := "request.auth.claims[" + claim + "]"
	var out []string
	for _, ap := range rs.AuthorizationPolicies {
		if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_ALLOW {
			continue
		}
		for _, rule := range ap.Spec.GetRules() {
			for _, c := range rule.GetWhen() {
				if c.GetKey() != key {
					continue
				}
				for _, v := range c.GetValues() {
					if !slices.Contains(out, v) {
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}
