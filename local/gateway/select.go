package gateway

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	typev1beta1 "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// RootNamespace is Istio's default mesh root namespace: a security policy
// there without a selector applies to every workload in the mesh.
const RootNamespace = "istio-system"

// Workload identifies the gateway deployment this process stands in for, as
// Istio sees it: its namespace and its pod labels.
type Workload struct {
	Namespace string
	Labels    map[string]string
}

func (w Workload) String() string {
	keys := slices.Sorted(maps.Keys(w.Labels))
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(k + "=" + w.Labels[k])
	}
	return fmt.Sprintf("%s{%s}", w.Namespace, b.String())
}

// Selected is what applies to one gateway workload.
type Selected struct {
	Gateways               []*networkingv1.Gateway
	VirtualServices        []*networkingv1.VirtualService // bound to one of Gateways
	RequestAuthentications []*securityv1.RequestAuthentication
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
}

// Select applies Istio's selection rules for a gateway workload:
//   - a Gateway applies when its selector's labels are a subset of the
//     workload's (in any namespace: Istio's default, PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false);
//   - a VirtualService applies when its gateways list names a selected Gateway
//     ("name" means the VirtualService's own namespace, "ns/name" another;
//     an empty list means only "mesh", i.e. sidecars, not gateways);
//   - RequestAuthentication and AuthorizationPolicy apply when they live in
//     the root namespace without a selector, or in the workload's namespace
//     with no selector or a selector whose matchLabels the workload carries.
//     Policies with targetRef(s) attach to Kubernetes Gateway API resources,
//     which a classic Istio gateway workload is not, so they do not apply.
//
// https://istio.io/latest/docs/reference/config/networking/gateway/
// https://istio.io/latest/docs/reference/config/networking/virtual-service/#VirtualService-gateways
// https://istio.io/latest/docs/reference/config/type/workload-selector/
func (rs *Resources) Select(w Workload) Selected {
	var s Selected
	names := map[string]bool{}
	for _, g := range rs.Gateways {
		if labelsMatch(g.Spec.GetSelector(), w.Labels) {
			s.Gateways = append(s.Gateways, g)
			names[g.Namespace+"/"+g.Name] = true
		}
	}
	for _, vs := range rs.VirtualServices {
		for _, ref := range vs.Spec.GetGateways() {
			if !strings.Contains(ref, "/") {
				ref = vs.Namespace + "/" + ref
			}
			if names[ref] {
				s.VirtualServices = append(s.VirtualServices, vs)
				break
			}
		}
	}
	for _, ra := range rs.RequestAuthentications {
		if policyApplies(ra.Namespace, ra.Spec.GetSelector(), len(ra.Spec.GetTargetRefs()) > 0 || ra.Spec.GetTargetRef() != nil, w) {
			s.RequestAuthentications = append(s.RequestAuthentications, ra)
		}
	}
	for _, ap := range rs.AuthorizationPolicies {
		if policyApplies(ap.Namespace, ap.Spec.GetSelector(), len(ap.Spec.GetTargetRefs()) > 0 || ap.Spec.GetTargetRef() != nil, w) {
			s.AuthorizationPolicies = append(s.AuthorizationPolicies, ap)
		}
	}
	return s
}

func policyApplies(ns string, sel *typev1beta1.WorkloadSelector, targeted bool, w Workload) bool {
	if targeted {
		return false
	}
	switch ns {
	case RootNamespace:
		// A selector in the root namespace selects workloads in every
		// namespace; without one the policy is mesh-wide.
		return sel == nil || subset(sel.GetMatchLabels(), w.Labels)
	case w.Namespace:
		return sel == nil || subset(sel.GetMatchLabels(), w.Labels)
	}
	return false
}

// labelsMatch is a Gateway's selector rule: every label it names must be on
// the workload; an empty selector selects every gateway workload.
func labelsMatch(selector, labels map[string]string) bool {
	return subset(selector, labels)
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
