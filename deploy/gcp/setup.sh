#!/usr/bin/env bash
# Creates everything the sample needs in a Google Cloud project, from empty:
# APIs, the VPC and its subnets, Cloud NAT, the Serverless VPC Access
# connector, the internal load balancer's address, a private GKE cluster with
# Istio, Identity Platform (email/password, authorised domain, a test user),
# the mTLS certificates and their secrets, and least-privilege service
# accounts. Deploying the code is skaffold's job (see docs/tutorial.md).
#
# Idempotent: every step looks before it creates, so a run that failed half
# way (or a run on a finished project) can simply be run again.
#
#   PROJECT_ID=my-project deploy/gcp/setup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
# shellcheck source=deploy/gcp/config.sh
source "${here}/config.sh"

step() { printf '\n== %s\n' "$*"; }
# exists runs a describe command quietly and says whether it found the thing.
exists() { "$@" >/dev/null 2>&1; }

# The deployed files follow config.sh (and the settings are saved for a new
# terminal) before anything is created from it.
"${here}/configure.sh"
gcloud config set project "${PROJECT_ID}" >/dev/null
PROJECT_NUMBER="$(gcloud projects describe "${PROJECT_ID}" --format='value(projectNumber)')"
# Cloud Run's deterministic URL for the frontend, known before it exists.
FRONTEND_HOST="${FRONTEND_SERVICE}-${PROJECT_NUMBER}.${REGION}.run.app"

step "APIs"
gcloud services enable "${APIS[@]}"

step "VPC ${NETWORK}, subnet ${GKE_SUBNET}, Cloud NAT"
if ! exists gcloud compute networks describe "${NETWORK}"; then
	gcloud compute networks create "${NETWORK}" --subnet-mode=custom
fi
if ! exists gcloud compute networks subnets describe "${GKE_SUBNET}" --region="${REGION}"; then
	# Private Google Access: the private nodes (and istiod fetching the
	# JWKS from www.googleapis.com) reach Google APIs without public IPs.
	gcloud compute networks subnets create "${GKE_SUBNET}" \
		--network="${NETWORK}" --region="${REGION}" --range="${GKE_SUBNET_RANGE}" \
		--secondary-range="${PODS_RANGE_NAME}=${PODS_RANGE},${SERVICES_RANGE_NAME}=${SERVICES_RANGE}" \
		--enable-private-ip-google-access
fi
# Private nodes pull Istio's images from outside Google: NAT, outbound only.
if ! exists gcloud compute routers describe "${ROUTER}" --region="${REGION}"; then
	gcloud compute routers create "${ROUTER}" --network="${NETWORK}" --region="${REGION}"
fi
if ! exists gcloud compute routers nats describe "${NAT}" --router="${ROUTER}" --region="${REGION}"; then
	gcloud compute routers nats create "${NAT}" --router="${ROUTER}" --region="${REGION}" \
		--auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges
fi

step "internal address ${GATEWAY_IP} for the gateway's load balancer"
if ! exists gcloud compute addresses describe "${GATEWAY_ADDRESS_NAME}" --region="${REGION}"; then
	gcloud compute addresses create "${GATEWAY_ADDRESS_NAME}" --region="${REGION}" \
		--subnet="${GKE_SUBNET}" --addresses="${GATEWAY_IP}"
fi

if [ "${VPC_EGRESS}" = direct ]; then
	step "subnet ${RUN_SUBNET} (${RUN_SUBNET_RANGE}) for Cloud Run's Direct VPC egress"
	# Each frontend instance takes an address here; Private Google Access lets
	# it reach Google APIs privately too.
	if ! exists gcloud compute networks subnets describe "${RUN_SUBNET}" --region="${REGION}"; then
		gcloud compute networks subnets create "${RUN_SUBNET}" \
			--network="${NETWORK}" --region="${REGION}" --range="${RUN_SUBNET_RANGE}" \
			--enable-private-ip-google-access
	fi
else
	step "Serverless VPC Access connector ${CONNECTOR}"
	if ! exists gcloud compute networks vpc-access connectors describe "${CONNECTOR}" --region="${REGION}"; then
		gcloud compute networks vpc-access connectors create "${CONNECTOR}" \
			--region="${REGION}" --network="${NETWORK}" --range="${CONNECTOR_RANGE}" \
			--min-instances=2 --max-instances=3 --machine-type=e2-micro
	fi
fi

step "GKE node service account ${NODE_SA}: logs and metrics, image pulls, nothing else"
if ! exists gcloud iam service-accounts describe "${NODE_SA}"; then
	gcloud iam service-accounts create "${NODE_SA_NAME}" --display-name="GKE nodes (api-cluster)"
fi
# The one role GKE documents as the minimum for a custom node service account
# (https://cloud.google.com/kubernetes-engine/security/configure-node-service-accounts);
# image pulls are granted on the repository below.
gcloud projects add-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
	--member="serviceAccount:${NODE_SA}" --role=roles/container.defaultNodeServiceAccount >/dev/null

step "Artifact Registry repository ${AR_REPO}"
if ! exists gcloud artifacts repositories describe "${AR_REPO}" --location="${REGION}"; then
	gcloud artifacts repositories create "${AR_REPO}" --location="${REGION}" --repository-format=docker
fi
gcloud artifacts repositories add-iam-policy-binding "${AR_REPO}" --location="${REGION}" \
	--member="serviceAccount:${NODE_SA}" --role=roles/artifactregistry.reader >/dev/null
# ko pushes with the Docker credential helper; no Docker daemon needed.
gcloud auth configure-docker "${REGION}-docker.pkg.dev" --quiet

step "GKE cluster ${CLUSTER} (private nodes)"
if ! exists gcloud container clusters describe "${CLUSTER}" --zone="${ZONE}"; then
	gcloud container clusters create "${CLUSTER}" --zone="${ZONE}" \
		--network="${NETWORK}" --subnetwork="${GKE_SUBNET}" --enable-ip-alias \
		--cluster-secondary-range-name="${PODS_RANGE_NAME}" \
		--services-secondary-range-name="${SERVICES_RANGE_NAME}" \
		--enable-private-nodes --master-ipv4-cidr="${CONTROL_PLANE_RANGE}" \
		--service-account="${NODE_SA}" --workload-pool="${PROJECT_ID}.svc.id.goog" \
		--shielded-secure-boot --num-nodes=2 --machine-type=e2-standard-4
fi
gcloud container clusters get-credentials "${CLUSTER}" --zone="${ZONE}"
# The control plane calls istiod's sidecar injection webhook on 15017; a
# private cluster's firewall only lets it reach 443 and 10250 by default.
if ! exists gcloud compute firewall-rules describe "${WEBHOOK_FIREWALL}"; then
	gcloud compute firewall-rules create "${WEBHOOK_FIREWALL}" --network="${NETWORK}" \
		--direction=INGRESS --source-ranges="${CONTROL_PLANE_RANGE}" --allow=tcp:15017
fi

step "Istio from deploy/istio/operator.yaml (istiod only: the gateway is deployed by skaffold)"
# The istioctl pinned in tools/go.mod, with the release images the operator
# file pins: the control plane matches the version the manifests are
# validated with. "install" converges, so re-running is safe.
(cd "${repo}" && go tool -modfile=tools/go.mod istioctl install -f deploy/istio/operator.yaml --skip-confirmation)

step "certificates for the frontend -> gateway mTLS hop (${CERTS_DIR})"
if [ ! -f "${CERTS_DIR}/${GATEWAY_SECRET}.secret.yaml" ]; then
	mkdir -p "${CERTS_DIR}"
	chmod 700 "${CERTS_DIR}"
	(cd "${repo}" && go run ./cmd/certs -out "${CERTS_DIR}" -gateway-ip "${GATEWAY_IP}" -gateway-host "${GATEWAY_HOST}" \
		-secret-name "${GATEWAY_SECRET}" -namespace "${GATEWAY_NAMESPACE}")
fi
kubectl create namespace "${GATEWAY_NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "${CERTS_DIR}/${GATEWAY_SECRET}.secret.yaml"

step "frontend service account ${FRONTEND_SA} and its secrets"
if ! exists gcloud iam service-accounts describe "${FRONTEND_SA}"; then
	gcloud iam service-accounts create "${FRONTEND_SA_NAME}" --display-name="Cloud Run frontend"
fi
for i in "${!FRONTEND_SECRETS[@]}"; do
	secret="${FRONTEND_SECRETS[$i]}"
	file="${CERTS_DIR}/frontend/${FRONTEND_SECRET_FILES[$i]}"
	if ! exists gcloud secrets describe "${secret}"; then
		gcloud secrets create "${secret}" --replication-policy=automatic
	fi
	# A new version only when the file differs from the latest one: a re-run
	# adds nothing, a renewed certificate is rotated in.
	if ! gcloud secrets versions access latest --secret="${secret}" 2>/dev/null | cmp -s - "${file}"; then
		gcloud secrets versions add "${secret}" --data-file="${file}"
	fi
	# Read access to exactly these secrets, not to Secret Manager.
	gcloud secrets add-iam-policy-binding "${secret}" --condition=None --quiet \
		--member="serviceAccount:${FRONTEND_SA}" --role=roles/secretmanager.secretAccessor >/dev/null
done

step "machine caller: service account ${APICLIENT_SA} and its secrets"
# Certificate directories from before the machine caller existed lack
# apiclient/: issue it with the same CA, leaving the others as they are.
if [ ! -d "${CERTS_DIR}/apiclient" ]; then
	scratch="$(mktemp -d)"
	(cd "${repo}" && go run ./cmd/certs -out "${scratch}" -ca-dir "${CERTS_DIR}/ca" -gateway-ip "${GATEWAY_IP}" \
		-gateway-host "${GATEWAY_HOST}" -secret-name "${GATEWAY_SECRET}" -namespace "${GATEWAY_NAMESPACE}" >/dev/null)
	mv "${scratch}/apiclient" "${CERTS_DIR}/apiclient"
	rm -rf "${scratch}"
fi
if ! exists gcloud iam service-accounts describe "${APICLIENT_SA}"; then
	# No project role: the metadata server gives a job ID tokens of its own
	# account without any, and the gateway admits it by email.
	gcloud iam service-accounts create "${APICLIENT_SA_NAME}" --display-name="apiclient job (calls the private API)"
fi
for i in "${!APICLIENT_SECRETS[@]}"; do
	secret="${APICLIENT_SECRETS[$i]}"
	file="${CERTS_DIR}/apiclient/${APICLIENT_SECRET_FILES[$i]}"
	if ! exists gcloud secrets describe "${secret}"; then
		gcloud secrets create "${secret}" --replication-policy=automatic
	fi
	if ! gcloud secrets versions access latest --secret="${secret}" 2>/dev/null | cmp -s - "${file}"; then
		gcloud secrets versions add "${secret}" --data-file="${file}"
	fi
	gcloud secrets add-iam-policy-binding "${secret}" --condition=None --quiet \
		--member="serviceAccount:${APICLIENT_SA}" --role=roles/secretmanager.secretAccessor >/dev/null
done

step "Identity Platform: email/password sign-in, authorised domain ${FRONTEND_HOST}"
token="$(gcloud auth print-access-token)"
idp() { # METHOD PATH [curl args...]: one call to the Identity Toolkit admin API
	local method="$1" path="$2"
	shift 2
	curl --fail-with-body --silent --show-error -X "${method}" \
		-H "Authorization: Bearer ${token}" -H "X-Goog-User-Project: ${PROJECT_ID}" \
		-H "Content-Type: application/json" "$@" \
		"https://identitytoolkit.googleapis.com/${path}"
}
if ! idp GET "admin/v2/projects/${PROJECT_ID}/config" >/dev/null 2>&1; then
	idp POST "v2/projects/${PROJECT_ID}/identityPlatform:initializeAuth" --data '{}' >/dev/null
fi
idp PATCH "admin/v2/projects/${PROJECT_ID}/config?updateMask=signIn.email.enabled,signIn.email.passwordRequired,authorizedDomains" \
	--data "{\"signIn\":{\"email\":{\"enabled\":true,\"passwordRequired\":true}},
	         \"authorizedDomains\":[\"localhost\",\"${PROJECT_ID}.firebaseapp.com\",\"${PROJECT_ID}.web.app\",\"${FRONTEND_HOST}\"]}" >/dev/null

step "Identity Platform access: the backend looks users up, the frontend revokes sessions"
# A custom role per holder, with exactly the permission of the one call it
# makes (https://cloud.google.com/identity-platform/docs/access-control):
# roles/firebaseauth.viewer would also read the project and its sign-in
# configuration, roles/firebaseauth.admin would also create and delete users
# and change that configuration. A role teardown.sh deleted can be undeleted
# for 7 days (no binding to it works meanwhile), and
# its id cannot be reused until it is purged, so a later run undeletes it
# (https://cloud.google.com/iam/docs/reference/rest/v1/projects.roles/delete).
role() { # ID PERMISSION TITLE: create, undelete or converge the custom role
	local id="$1" permission="$2" title="$3"
	if ! exists gcloud iam roles describe "${id}" --project="${PROJECT_ID}"; then
		gcloud iam roles create "${id}" --project="${PROJECT_ID}" --stage=GA \
			--title="${title}" --permissions="${permission}" >/dev/null
		return
	fi
	if [ "$(gcloud iam roles describe "${id}" --project="${PROJECT_ID}" --format='value(deleted)')" = True ]; then
		gcloud iam roles undelete "${id}" --project="${PROJECT_ID}" >/dev/null
	fi
	gcloud iam roles update "${id}" --project="${PROJECT_ID}" --permissions="${permission}" --quiet >/dev/null
}
role "${BACKEND_ROLE}" firebaseauth.users.get "API: look users up (revocation check)"
role "${FRONTEND_ROLE}" firebaseauth.users.update "Frontend: revoke a user's sessions at sign-out"
# The backend looks each user up at most once every 30 s (its revocation
# check) with Application Default Credentials. On GKE those come from the GKE metadata
# server as its Kubernetes service account, through Workload Identity
# Federation for GKE (the cluster's --workload-pool): the account is granted
# roles by its principal, with no Google service account to impersonate and
# no key (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
# The backend names its project itself (GOOGLE_CLOUD_PROJECT in its
# Deployment), so it asks the metadata server only for tokens.
gcloud projects add-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
	--member="principal://iam.googleapis.com/projects/${PROJECT_NUMBER}/locations/global/workloadIdentityPools/${PROJECT_ID}.svc.id.goog/subject/ns/${BACKEND_NAMESPACE}/sa/${BACKEND_KSA}" \
	--role="projects/${PROJECT_ID}/roles/${BACKEND_ROLE}" >/dev/null
# The API-key decision service (deploy/kubernetes/apikeys) gets no grant and
# no Google resource here: it only verifies users' ID tokens against
# Google's public keys, and keeps apps, hashed keys and quota counters in the
# in-cluster Redis that skaffold's gke profile deploys beside it (its image
# comes from Docker Hub through the Cloud NAT above). Memorystore for Redis,
# the production choice, is described in docs/tutorial.md; this script does
# not create one.
# Sign-out revokes the user's refresh tokens (the Admin SDK's
# RevokeRefreshTokens, accounts:update) as the frontend's service account.
gcloud projects add-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
	--member="serviceAccount:${FRONTEND_SA}" \
	--role="projects/${PROJECT_ID}/roles/${FRONTEND_ROLE}" >/dev/null

step "browser API key ${API_KEY_NAME} (public by design, restricted to Identity Toolkit)"
key_id="$(gcloud services api-keys list --filter="displayName=${API_KEY_NAME}" --format='value(uid)' | head -n1)"
if [ -z "${key_id}" ]; then
	gcloud services api-keys create --display-name="${API_KEY_NAME}" \
		--api-target=service=identitytoolkit.googleapis.com \
		--api-target=service=securetoken.googleapis.com
	key_id="$(gcloud services api-keys list --filter="displayName=${API_KEY_NAME}" --format='value(uid)' | head -n1)"
fi
FIREBASE_API_KEY="$(gcloud services api-keys get-key-string "${key_id}" --format='value(keyString)')"
# Into deploy/cloudrun/frontend.yaml, and saved for a new terminal.
FIREBASE_API_KEY="${FIREBASE_API_KEY}" "${here}/configure.sh"

step "test user ${TEST_USER_EMAIL} (password in Secret Manager: ${TEST_USER_SECRET})"
if ! exists gcloud secrets describe "${TEST_USER_SECRET}"; then
	gcloud secrets create "${TEST_USER_SECRET}" --replication-policy=automatic
	openssl rand -base64 24 | tr -d '\n' | gcloud secrets versions add "${TEST_USER_SECRET}" --data-file=-
fi
found="$(idp POST "v1/projects/${PROJECT_ID}/accounts:lookup" --data "{\"email\":[\"${TEST_USER_EMAIL}\"]}")"
if [[ "${found}" != *'"users"'* ]]; then
	# The password goes through stdin, never onto a command line.
	gcloud secrets versions access latest --secret="${TEST_USER_SECRET}" |
		jq -Rc --arg email "${TEST_USER_EMAIL}" '{email: $email, password: ., emailVerified: true}' |
		idp POST "v1/projects/${PROJECT_ID}/accounts" --data @- >/dev/null
fi

step "done"
cat <<DONE
Project ${PROJECT_ID} is ready, and deploy/cloudrun/frontend.yaml holds its values
(GOOGLE_CLOUD_PROJECT=${PROJECT_ID}, GATEWAY_URL=https://${GATEWAY_IP}, FIREBASE_API_KEY=${FIREBASE_API_KEY}).
Next (docs/tutorial.md, step 5):
  skaffold run -p gke --default-repo=${IMAGE_REPO}
  skaffold run -p cloudrun --default-repo=${IMAGE_REPO}
  skaffold run -p cloudrun-job --default-repo=${IMAGE_REPO}   (the machine caller; docs/tutorial.md)
Frontend URL once deployed: https://${FRONTEND_HOST}
DONE
