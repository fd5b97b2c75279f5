// Package authz evaluates Istio AuthorizationPolicy resources for the local
// gateway: a pure function from the facts of one request to a decision with
// a reason, with the semantics of the Envoy RBAC filters istiod generates
// (istio/istio pilot/pkg/security/authz/builder and model).
//
// Evaluation order (https://istio.io/latest/docs/concepts/security/#implicit-enablement):
// CUSTOM, then DENY, then ALLOW. A request that matches a DENY rule is denied;
// if any ALLOW policy applies, a request must match one of its rules; with no
// ALLOW policy it is allowed. AUDIT policies and policies annotated
// istio.io/dry-run never change a decision. A policy with no rules matches
// nothing, so an ALLOW policy with an empty spec denies everything.
//
// CUSTOM delegates to an external authorizer (ext_authz). The gateway asks
// it itself: MatchCustom says whether and which provider, and DecideLocal
// is the DENY and ALLOW step after it (custom.go). Decide, for callers with
// no provider, fails closed as Envoy's ext_authz filter does with
// failure_mode_allow false when its server is unreachable.
//
// Within a rule, from, to and when are AND'ed; the entries of from (and of
// to) are OR'ed; within a source or operation the fields are AND'ed; the
// values of a field are OR'ed, and notValues exclude. String values use
// Istio's matching: exact, "prefix*", "*suffix", and "*" for any non-empty
// value (pilot/pkg/security/authz/matcher).
//
// Anything the engine cannot evaluate faithfully makes New fail with an
// error that names the policy, the rule and the field.
package authz

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// Request is what the gateway knows about one request.
type Request struct {
	Method, Host, Path string // Path already normalized by the caller, no query
	Headers            http.Header
	// Principal is the peer identity: the client certificate's URI SAN
	// without "spiffe://", "" without a client certificate.
	Principal string
	// RequestPrincipal is "iss/sub" of the verified JWT, "" if none.
	RequestPrincipal string
	// Claims is the verified JWT payload (authn.Result.Claims). Istio
	// matches request principals against its iss and sub claims; when it
	// is nil, RequestPrincipal is split at its last "/" instead.
	Claims map[string]any
	// Port is the gateway port the request arrived on (ports,
	// destination.port); 0 when unknown, which no port value matches.
	Port int
	// SourceIP is the direct peer's address (ipBlocks, source.ip); the zero
	// value matches no block.
	SourceIP netip.Addr
}

// Decision is the outcome for one request.
type Decision struct {
	Allow bool
	// Reason names the policy and rule that decided, in Envoy's words
	// where it has some (rbac_access_denied_matched_policy[...]).
	Reason string
	// Policy is "namespace/name" of the deciding policy, "" when none did.
	Policy string
}

// Engine holds compiled policies. It is immutable and safe for concurrent use.
type Engine struct {
	custom, deny, allow []*rule // each in Envoy's policy-name order
	hasAllow            bool
}

// rule is one compiled rule of one policy.
type rule struct {
	name     string // Envoy's policy id: ns[NS]-policy[NAME]-rule[i]
	policy   string // NS/NAME
	provider string // CUSTOM only
	match    predicate
}

type predicate func(*Request) bool

// annotationDryRun is Istio's istio.io/dry-run annotation.
const annotationDryRun = "istio.io/dry-run"

// New compiles the policies that apply to this workload (the caller has
// already selected them). It rejects what cannot be evaluated, naming it.
func New(policies []*securityv1.AuthorizationPolicy) (*Engine, error) {
	e := &Engine{}
	for _, p := range policies {
		if p == nil {
			return nil, fmt.Errorf("authz: nil policy")
		}
		id := p.Namespace + "/" + p.Name
		dryRun := false
		if v, ok := p.Annotations[annotationDryRun]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("authz: policy %s: annotation %s: %q is not a boolean", id, annotationDryRun, v)
			}
			dryRun = b
		}
		spec := &p.Spec
		rules, err := compilePolicy(p.Namespace, p.Name, spec)
		if err != nil {
			return nil, fmt.Errorf("authz: policy %s: %w", id, err)
		}
		if dryRun || spec.GetAction() == securityv1beta1.AuthorizationPolicy_AUDIT {
			continue // shadow rules: logged by Envoy, never enforced
		}
		switch spec.GetAction() {
		case securityv1beta1.AuthorizationPolicy_CUSTOM:
			e.custom = append(e.custom, rules...)
		case securityv1beta1.AuthorizationPolicy_DENY:
			e.deny = append(e.deny, rules...)
		case securityv1beta1.AuthorizationPolicy_ALLOW:
			e.allow = append(e.allow, rules...)
			e.hasAllow = true
		}
	}
	// Envoy's RBAC engine walks its policy map in key order and reports the
	// first match, so the same order gives the same matched policy id.
	for _, rs := range [][]*rule{e.custom, e.deny, e.allow} {
		slices.SortStableFunc(rs, func(a, b *rule) int { return strings.Compare(a.name, b.name) })
	}
	return e, nil
}

// Decide evaluates the policies for one request.
func (e *Engine) Decide(req Request) Decision {
	for _, r := range e.custom {
		if r.match(&req) {
			return Decision{Reason: fmt.Sprintf("ext_authz_denied: CUSTOM provider %q is not available locally (fail closed); matched %s",
				r.provider, r.name), Policy: r.policy}
		}
	}
	return e.DecideLocal(req)
}

// compilePolicy validates one policy as Istio's ValidateAuthorizationPolicy
// does (pkg/config/validation) and compiles its rules.
func compilePolicy(namespace, name string, spec *securityv1beta1.AuthorizationPolicy) ([]*rule, error) {
	action := spec.GetAction()
	switch action {
	case securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY,
		securityv1beta1.AuthorizationPolicy_AUDIT, securityv1beta1.AuthorizationPolicy_CUSTOM:
	default:
		return nil, fmt.Errorf("action %v is not supported", action)
	}
	provider := spec.GetProvider().GetName()
	switch {
	case action == securityv1beta1.AuthorizationPolicy_CUSTOM && spec.Rules == nil:
		return nil, fmt.Errorf("CUSTOM action without rules is meaningless (add an empty rule {} to match every request)")
	case action == securityv1beta1.AuthorizationPolicy_CUSTOM && provider == "":
		return nil, fmt.Errorf("provider.name must not be empty with CUSTOM action")
	case action != securityv1beta1.AuthorizationPolicy_CUSTOM && spec.GetProvider() != nil:
		return nil, fmt.Errorf("provider must not be set with %s action", action)
	case action == securityv1beta1.AuthorizationPolicy_DENY && spec.Rules == nil:
		return nil, fmt.Errorf("DENY action without rules is meaningless (add an empty rule {} to match every request)")
	}
	var out []*rule
	for i, r := range spec.GetRules() {
		if r == nil {
			return nil, fmt.Errorf("rules[%d] must not be nil", i)
		}
		m, err := compileRule(namespace, action, r)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].%w", i, err)
		}
		out = append(out, &rule{name: ruleName(namespace, name, i), policy: namespace + "/" + name, provider: provider, match: m})
	}
	if len(spec.GetRules()) == 0 {
		// builder.go: a policy without rules becomes rbacPolicyMatchNever.
		out = append(out, &rule{name: ruleName(namespace, name, 0), policy: namespace + "/" + name, provider: provider,
			match: func(*Request) bool { return false }})
	}
	return out, nil
}

// ruleName is builder.go policyName: the id Envoy reports for a match.
func ruleName(namespace, name string, i int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", namespace, name, i)
}

func compileRule(namespace string, action securityv1beta1.AuthorizationPolicy_Action, r *securityv1beta1.Rule) (predicate, error) {
	// The AND is evaluated operation first: paths and methods are the
	// cheapest checks and the likeliest to fail, so most rules that do not
	// apply are passed over after a string comparison. The order cannot
	// change a result: every part is a pure check.
	var and []predicate
	if r.To != nil && len(r.To) == 0 {
		return nil, fmt.Errorf("to must not be empty")
	}
	var to []predicate
	for j, t := range r.GetTo() {
		if t == nil || t.GetOperation() == nil {
			return nil, fmt.Errorf("to[%d].operation must not be nil", j)
		}
		p, err := compileOperation(t.GetOperation())
		if err != nil {
			return nil, fmt.Errorf("to[%d].operation.%w", j, err)
		}
		to = append(to, p)
	}
	if len(to) > 0 {
		and = append(and, anyOf(to))
	}
	if r.From != nil && len(r.From) == 0 {
		return nil, fmt.Errorf("from must not be empty")
	}
	var from []predicate
	for j, f := range r.GetFrom() {
		if f == nil || f.GetSource() == nil {
			return nil, fmt.Errorf("from[%d].source must not be nil", j)
		}
		p, err := compileSource(namespace, action, f.GetSource())
		if err != nil {
			return nil, fmt.Errorf("from[%d].source.%w", j, err)
		}
		from = append(from, p)
	}
	if len(from) > 0 {
		and = append(and, anyOf(from))
	}
	for j, c := range r.GetWhen() {
		if c == nil {
			return nil, fmt.Errorf("when[%d] must not be nil", j)
		}
		p, err := compileCondition(namespace, action, c)
		if err != nil {
			return nil, fmt.Errorf("when[%d]: %w", j, err)
		}
		and = append(and, p)
	}
	return allOf(and), nil
}

func compileSource(namespace string, action securityv1beta1.AuthorizationPolicy_Action, s *securityv1beta1.Source) (predicate, error) {
	if action == securityv1beta1.AuthorizationPolicy_CUSTOM &&
		len(s.Principals)+len(s.NotPrincipals)+len(s.RequestPrincipals)+len(s.NotRequestPrincipals)+
			len(s.Namespaces)+len(s.NotNamespaces)+len(s.ServiceAccounts)+len(s.NotServiceAccounts)+
			len(s.TrustDomains)+len(s.NotTrustDomains) > 0 {
		// Istio's validation refuses these with CUSTOM.
		return nil, fmt.Errorf("principals, requestPrincipals, namespaces, serviceAccounts and trustDomains are not supported with CUSTOM action")
	}
	if len(s.RemoteIpBlocks)+len(s.NotRemoteIpBlocks) > 0 {
		return nil, fmt.Errorf("remoteIpBlocks: not supported locally (needs the X-Forwarded-For trust configuration of the gateway)")
	}
	if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 &&
		len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 {
		return nil, fmt.Errorf("serviceAccounts: cannot be set with namespaces or principals")
	}
	return allFields("source", []field{
		{"principals", "notPrincipals", s.Principals, s.NotPrincipals, principalMatcher},
		{"requestPrincipals", "notRequestPrincipals", s.RequestPrincipals, s.NotRequestPrincipals, requestPrincipalMatcher},
		{"namespaces", "notNamespaces", s.Namespaces, s.NotNamespaces, namespaceMatcher},
		{"serviceAccounts", "notServiceAccounts", s.ServiceAccounts, s.NotServiceAccounts,
			func(v string) (predicate, error) { return serviceAccountMatcher(namespace, v) }},
		{"trustDomains", "notTrustDomains", s.TrustDomains, s.NotTrustDomains, trustDomainMatcher},
		{"ipBlocks", "notIpBlocks", s.IpBlocks, s.NotIpBlocks, ipBlockMatcher},
	})
}

func compileOperation(o *securityv1beta1.Operation) (predicate, error) {
	return allFields("operation", []field{
		{"paths", "notPaths", o.Paths, o.NotPaths, pathMatcher},
		{"methods", "notMethods", o.Methods, o.NotMethods, methodMatcher},
		{"ports", "notPorts", o.Ports, o.NotPorts, portMatcher},
		{"hosts", "notHosts", o.Hosts, o.NotHosts, hostMatcher},
	})
}

// field is one match field of a source or an operation and its not* form.
type field struct {
	name, notName     string
	values, notValues []string
	compile           func(v string) (predicate, error)
}

// allFields ANDs the fields that are set; what ("source", "operation")
// must set at least one.
func allFields(what string, fields []field) (predicate, error) {
	var and []predicate
	for _, f := range fields {
		p, err := valuesAndNot(f.name, f.notName, f.values, f.notValues, f.compile)
		if err != nil {
			return nil, err
		}
		if p != nil {
			and = append(and, p)
		}
	}
	if len(and) == 0 {
		return nil, fmt.Errorf("%s must not be empty", what)
	}
	return allOf(and), nil
}

// valuesAndNot is model.go rule.principal/permission: OR of the values, AND
// NOT (OR of the notValues). nil when neither is set.
func valuesAndNot(name, notName string, values, notValues []string, compile func(string) (predicate, error)) (predicate, error) {
	pos, err := compileAll(name, values, compile)
	if err != nil {
		return nil, err
	}
	neg, err := compileAll(notName, notValues, compile)
	if err != nil {
		return nil, err
	}
	switch {
	case pos != nil && neg != nil:
		return func(r *Request) bool { return pos(r) && !neg(r) }, nil
	case pos != nil:
		return pos, nil
	case neg != nil:
		return func(r *Request) bool { return !neg(r) }, nil
	}
	return nil, nil
}

func compileAll(name string, values []string, compile func(string) (predicate, error)) (predicate, error) {
	if len(values) == 0 {
		return nil, nil
	}
	ps := make([]predicate, 0, len(values))
	for k, v := range values {
		if v == "" {
			return nil, fmt.Errorf("%s[%d] must not be empty", name, k)
		}
		p, err := compile(v)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", name, k, err)
		}
		ps = append(ps, p)
	}
	return anyOf(ps), nil
}

func anyOf(ps []predicate) predicate {
	if len(ps) == 1 {
		return ps[0]
	}
	return func(r *Request) bool {
		for _, p := range ps {
			if p(r) {
				return true
			}
		}
		return false
	}
}

func allOf(ps []predicate) predicate {
	switch len(ps) {
	case 0:
		return func(*Request) bool { return true }
	case 1:
		return ps[0]
	}
	return func(r *Request) bool {
		for _, p := range ps {
			if !p(r) {
				return false
			}
		}
		return true
	}
}
