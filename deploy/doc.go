// Package deploy holds what puts this sample on Google Cloud, and the tests
// that validate it offline with the real validators, since no cluster or
// cloud account is at hand when they run:
//
//   - kubernetes/: the backend and the internal Istio ingress gateway, as
//     kustomize overlays for GKE (gke/) and a laptop cluster (local-cluster/)
//     that also pull in the gateway policy in ../istio;
//   - cloudrun/frontend.yaml: the frontend as a Knative Service for Cloud Run;
//   - istio/operator.yaml: the Istio install, pinned to a release;
//   - gcp/: config.sh, the one source of the settings, configure.sh, which
//     writes them into the files above, and the idempotent setup and
//     teardown scripts for a project.
//
// The tests render every overlay with kustomize's own library, strictly decode
// every object into the upstream Go types (k8s.io/api, istio.io/client-go,
// knative.dev/serving), run `istioctl validate` on the Istio resources,
// shellcheck every script, validate ../skaffold.yaml against skaffold's JSON
// schema, and check that names, images and the project id agree everywhere,
// including in the commands of docs/tutorial.md. platform_test.go holds the
// documented limits of Cloud Run, GKE, skaffold and Istio the files rely on,
// one row per rule with its documentation page.
package deploy
