package authz

// CustomMatch is the CUSTOM rule a request matched: the gateway asks its
// provider before anything else decides.
type CustomMatch struct {
	Provider string // meshConfig.extensionProviders[].name
	Rule     string // Envoy's policy id, ns[NS]-policy[NAME]-rule[i]
	Policy   string // NS/NAME
}

// Providers lists the provider names the CUSTOM policies use, so the gateway
// can refuse at start-up one it cannot reach.
func (e *Engine) Providers() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range e.custom {
		if !seen[r.provider] {
			seen[r.provider] = true
			out = append(out, r.provider)
		}
	}
	return out
}

// MatchCustom reports the first CUSTOM rule req matches. Istio compiles the
// CUSTOM rules into a shadow RBAC filter whose match enables the ext_authz
// filter for the request (pilot/pkg/security/authz/builder); Istio allows one
// provider per workload, so the first match is the only call.
func (e *Engine) MatchCustom(req *Request) (CustomMatch, bool) {
	for _, r := range e.custom {
		if r.match(req) {
			return CustomMatch{Provider: r.provider, Rule: r.name, Policy: r.policy}, true
		}
	}
	return CustomMatch{}, false
}

// DecideLocal evaluates DENY then ALLOW: the RBAC filter after ext_authz,
// for a gateway that has asked the CUSTOM provider itself. Decide, which
// fails closed on any CUSTOM match, is for callers without a provider.
func (e *Engine) DecideLocal(req Request) Decision {
	for _, r := range e.deny {
		if r.match(&req) {
			return Decision{Reason: "rbac_access_denied_matched_policy[" + r.name + "]", Policy: r.policy}
		}
	}
	if !e.hasAllow {
		return Decision{Allow: true, Reason: "no ALLOW policy applies"}
	}
	for _, r := range e.allow {
		if r.match(&req) {
			return Decision{Allow: true, Reason: "allowed by " + r.name, Policy: r.policy}
		}
	}
	return Decision{Reason: "rbac_access_denied_matched_policy[none]"}
}
