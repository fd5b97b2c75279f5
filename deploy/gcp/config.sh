# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this file
# The name of every Google Cloud resource this sample creates, defined once
# and read by setup.sh, teardown.sh and the tutorial. Override any of them in
# the environment; PROJECT_ID is the one you must set.

: "${PROJECT_ID:?set PROJECT_ID to your Google Cloud project id, e.g. export PROJECT_ID=my-project}"
REGION="${REGION:-us-central1}"
ZONE="${ZONE:-${REGION}-a}"

# Network: the GKE nodes' subnet (with ranges for pods and services), the
# Serverless VPC Access connector's /28, and the internal load balancer's
# reserved address, which deploy/cloudrun/frontend.yaml calls as GATEWAY_URL.
NETWORK="${NETWORK:-api-vpc}"
GKE_SUBNET="${GKE_SUBNET:-gke-subnet}"
GKE_SUBNET_RANGE="${GKE_SUBNET_RANGE:-10.10.0.0/20}"
PODS_RANGE_NAME="${PODS_RANGE_NAME:-gke-pods}"
PODS_RANGE="${PODS_RANGE:-10.20.0.0/16}"
SERVICES_RANGE_NAME="${SERVICES_RANGE_NAME:-gke-services}"
SERVICES_RANGE="${SERVICES_RANGE:-10.30.0.0/20}"
CONTROL_PLANE_RANGE="${CONTROL_PLANE_RANGE:-172.16.0.0/28}"
CONNECTOR="${CONNECTOR:-api-connector}"
CONNECTOR_RANGE="${CONNECTOR_RANGE:-10.8.0.0/28}"
ROUTER="${ROUTER:-api-router}"
NAT="${NAT:-api-nat}"
GATEWAY_ADDRESS_NAME="${GATEWAY_ADDRESS_NAME:-api-gateway-ilb}"
GATEWAY_IP="${GATEWAY_IP:-10.10.0.100}"
GATEWAY_HOST="${GATEWAY_HOST:-api.internal.example}"
WEBHOOK_FIREWALL="${WEBHOOK_FIREWALL:-gke-control-plane-to-istio-webhook}"

# GKE and Istio.
CLUSTER="${CLUSTER:-api-cluster}"
NODE_SA_NAME="${NODE_SA_NAME:-gke-nodes}"
NODE_SA="${NODE_SA_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
GATEWAY_NAMESPACE="${GATEWAY_NAMESPACE:-istio-ingress}"
GATEWAY_SECRET="${GATEWAY_SECRET:-api-gateway-mtls}"

# Images, pushed by ko through skaffold.
AR_REPO="${AR_REPO:-acme}"
IMAGE_REPO="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"

# Cloud Run: the frontend's service, identity and client-certificate secrets.
FRONTEND_SERVICE="${FRONTEND_SERVICE:-frontend}"
FRONTEND_SA_NAME="${FRONTEND_SA_NAME:-frontend}"
FRONTEND_SA="${FRONTEND_SA_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
FRONTEND_SECRETS=(frontend-tls-crt frontend-tls-key frontend-tls-ca)
FRONTEND_SECRET_FILES=(tls.crt tls.key ca.crt)

# Certificates from `go run ./cmd/certs`: outside the repository, never
# committed. Keep the CA key (ca/tls.key) safe: it renews the others.
CERTS_DIR="${CERTS_DIR:-${HOME}/.config/cloudrun-istio-gke/${PROJECT_ID}/certs}"

# Identity Platform: the web API key for the browser SDK, and a test user
# whose generated password is kept in Secret Manager.
API_KEY_NAME="${API_KEY_NAME:-frontend-web}"
TEST_USER_EMAIL="${TEST_USER_EMAIL:-demo@example.com}"
TEST_USER_SECRET="${TEST_USER_SECRET:-test-user-password}"

# Everything the project must have switched on.
APIS=(
	compute.googleapis.com
	container.googleapis.com
	run.googleapis.com
	vpcaccess.googleapis.com
	artifactregistry.googleapis.com
	secretmanager.googleapis.com
	identitytoolkit.googleapis.com
	apikeys.googleapis.com
)
