# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this file
# The name of every Google Cloud resource this sample creates, and every
# setting the deployed files depend on, defined once and read by setup.sh,
# teardown.sh, configure.sh and the tutorial. Override any of them in the
# environment, then run deploy/gcp/configure.sh, which writes them into the
# files deployed as they are and saves them; PROJECT_ID is the one you must
# set. In a new terminal, `source deploy/gcp/config.sh` alone brings every
# variable back: the project from istio/project.env, the rest from what
# configure.sh saved.

config_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${PROJECT_ID:-}" ]; then
	PROJECT_ID="$(sed -n 's/^PROJECT_ID=//p' "${config_repo}/istio/project.env")"
	# demo-acme is the local stack's id (go run ./cmd/devstack), not yours.
	if [ "${PROJECT_ID}" = demo-acme ]; then PROJECT_ID=""; fi
fi
: "${PROJECT_ID:?set PROJECT_ID to your Google Cloud project id, e.g. export PROJECT_ID=my-project}"

# What configure.sh saved for this project: the values in force when it ran,
# each still overridden by the environment. Outside the repository, beside
# the certificates.
STATE_DIR="${STATE_DIR:-${HOME}/.config/cloudrun-istio-gke/${PROJECT_ID}}"
if [ -f "${STATE_DIR}/config.env" ]; then
	# shellcheck source=/dev/null
	source "${STATE_DIR}/config.env"
fi

REGION="${REGION:-us-central1}"
ZONE="${ZONE:-${REGION}-a}"

# How the frontend's requests to private ranges enter the VPC: "connector", a
# Serverless VPC Access connector (CONNECTOR), or "direct", Direct VPC egress
# on a subnet of its own (RUN_SUBNET): no connector instances to pay for, and
# it scales with the service.
VPC_EGRESS="${VPC_EGRESS:-connector}"

# Network: the GKE nodes' subnet (with ranges for pods and services), the
# connector's /28 or Cloud Run's subnet, and the internal load balancer's
# reserved address, which deploy/cloudrun/frontend.yaml calls as GATEWAY_URL.
# The ranges must not overlap, and GATEWAY_IP must be in GKE_SUBNET_RANGE
# (deploy/scripts_test.go checks both).
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
RUN_SUBNET="${RUN_SUBNET:-run-subnet}"
RUN_SUBNET_RANGE="${RUN_SUBNET_RANGE:-10.10.16.0/24}"
ROUTER="${ROUTER:-api-router}"
NAT="${NAT:-api-nat}"
GATEWAY_ADDRESS_NAME="${GATEWAY_ADDRESS_NAME:-api-gateway-ilb}"
GATEWAY_IP="${GATEWAY_IP:-10.10.0.100}"
# Fixed, not settings: the gateway's host name, namespace and TLS secret are
# written in istio/ (the gateway policy) and deploy/kubernetes.
GATEWAY_HOST=api.internal.example
WEBHOOK_FIREWALL="${WEBHOOK_FIREWALL:-gke-control-plane-to-istio-webhook}"

# GKE and Istio.
CLUSTER="${CLUSTER:-api-cluster}"
NODE_SA_NAME="${NODE_SA_NAME:-gke-nodes}"
NODE_SA="${NODE_SA_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
GATEWAY_NAMESPACE=istio-ingress
GATEWAY_SECRET=api-gateway-mtls

# The backend's Kubernetes service account, whose Workload Identity
# Federation principal reads users in Identity Platform (its revocation
# check). Fixed, not settings: deploy/kubernetes/backend names them.
BACKEND_NAMESPACE=api
BACKEND_KSA=backend
# Custom roles, each with the one Identity Platform permission its holder
# uses (https://cloud.google.com/identity-platform/docs/access-control):
# the backend looks users up (accounts:lookup, firebaseauth.users.get), the
# frontend revokes their refresh tokens at sign-out (accounts:update,
# firebaseauth.users.update).
BACKEND_ROLE="${BACKEND_ROLE:-apiUserReader}"
FRONTEND_ROLE="${FRONTEND_ROLE:-frontendSessionRevoker}"

# Images, pushed by ko through skaffold.
AR_REPO="${AR_REPO:-acme}"
IMAGE_REPO="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"

# Cloud Run: the frontend's service, identity and client-certificate secrets.
FRONTEND_SERVICE="${FRONTEND_SERVICE:-frontend}"
FRONTEND_SA_NAME="${FRONTEND_SA_NAME:-frontend}"
FRONTEND_SA="${FRONTEND_SA_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
FRONTEND_SECRETS=(frontend-tls-crt frontend-tls-key frontend-tls-ca)
FRONTEND_SECRET_FILES=(tls.crt tls.key ca.crt)

# The machine caller (deploy/cloudrun/apiclient-job.yaml): a Cloud Run job
# running as its own service account, on the gateway's allowlist by email,
# with its own client certificate from Secret Manager.
APICLIENT_JOB="${APICLIENT_JOB:-apiclient}"
APICLIENT_SA_NAME="${APICLIENT_SA_NAME:-reporter}"
APICLIENT_SA="${APICLIENT_SA_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
APICLIENT_SECRETS=(apiclient-tls-crt apiclient-tls-key apiclient-tls-ca)
APICLIENT_SECRET_FILES=(tls.crt tls.key ca.crt)

# Certificates from `go run ./cmd/certs`: outside the repository, never
# committed. Keep the CA key (ca/tls.key) safe: it renews the others.
CERTS_DIR="${CERTS_DIR:-${STATE_DIR}/certs}"

# Identity Platform: the web API key for the browser SDK, and a test user
# whose generated password is kept in Secret Manager.
API_KEY_NAME="${API_KEY_NAME:-frontend-web}"
# The key itself, once setup.sh has created it and saved it (public by
# design: it identifies the project to the browser SDK, it authorises nothing).
FIREBASE_API_KEY="${FIREBASE_API_KEY:-}"
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

# The settings configure.sh saves for a new terminal: everything above that
# you may override (the derived names follow from them).
SETTINGS=(
	REGION ZONE VPC_EGRESS NETWORK GKE_SUBNET GKE_SUBNET_RANGE PODS_RANGE_NAME PODS_RANGE
	SERVICES_RANGE_NAME SERVICES_RANGE CONTROL_PLANE_RANGE CONNECTOR CONNECTOR_RANGE RUN_SUBNET
	RUN_SUBNET_RANGE ROUTER NAT GATEWAY_ADDRESS_NAME GATEWAY_IP WEBHOOK_FIREWALL CLUSTER NODE_SA_NAME
	AR_REPO FRONTEND_SERVICE FRONTEND_SA_NAME BACKEND_ROLE FRONTEND_ROLE CERTS_DIR API_KEY_NAME FIREBASE_API_KEY TEST_USER_EMAIL
	TEST_USER_SECRET
)
