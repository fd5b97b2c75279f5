#!/usr/bin/env bash
# Deletes everything deploy/gcp/setup.sh and the skaffold profiles created, in
# reverse order, so nothing keeps costing money. Idempotent: what is already
# gone is skipped, so a failed run can be run again.
#
# Identity Platform stays enabled (it cannot be switched off, and costs nothing
# unused); its test user is deleted. The certificates in CERTS_DIR are kept:
# delete them yourself if you will not come back.
#
#   PROJECT_ID=my-project deploy/gcp/teardown.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/gcp/config.sh
source "${here}/config.sh"

step() { printf '\n== %s\n' "$*"; }
exists() { "$@" >/dev/null 2>&1; }

gcloud config set project "${PROJECT_ID}" >/dev/null
PROJECT_NUMBER="$(gcloud projects describe "${PROJECT_ID}" --format='value(projectNumber)')"

step "Cloud Run service ${FRONTEND_SERVICE}"
if exists gcloud run services describe "${FRONTEND_SERVICE}" --region="${REGION}"; then
	gcloud run services delete "${FRONTEND_SERVICE}" --region="${REGION}" --quiet
fi

step "test user ${TEST_USER_EMAIL}"
token="$(gcloud auth print-access-token)"
idp() { # METHOD PATH [curl args...]
	local method="$1" path="$2"
	shift 2
	curl --fail-with-body --silent --show-error -X "${method}" \
		-H "Authorization: Bearer ${token}" -H "X-Goog-User-Project: ${PROJECT_ID}" \
		-H "Content-Type: application/json" "$@" \
		"https://identitytoolkit.googleapis.com/${path}"
}
uid="$(idp POST "v1/projects/${PROJECT_ID}/accounts:lookup" --data "{\"email\":[\"${TEST_USER_EMAIL}\"]}" 2>/dev/null |
	jq -r '.users[0].localId // empty' || true)"
if [ -n "${uid}" ]; then
	idp POST "v1/projects/${PROJECT_ID}/accounts:delete" --data "{\"localId\":\"${uid}\"}" >/dev/null
fi

step "secrets"
for secret in "${FRONTEND_SECRETS[@]}" "${APICLIENT_SECRETS[@]}" "${TEST_USER_SECRET}"; do
	if exists gcloud secrets describe "${secret}"; then
		gcloud secrets delete "${secret}" --quiet
	fi
done

step "browser API key ${API_KEY_NAME}"
key_id="$(gcloud services api-keys list --filter="displayName=${API_KEY_NAME}" --format='value(uid)' | head -n1)"
if [ -n "${key_id}" ]; then
	gcloud services api-keys delete "${key_id}" --quiet
fi

# The cluster takes the API-key decision service and its in-cluster Redis
# with it: every app and key created on the developers' page is gone.
step "GKE cluster ${CLUSTER} (with Istio, the gateway, its load balancer and the API-key service)"
if exists gcloud container clusters describe "${CLUSTER}" --zone="${ZONE}"; then
	# Deleting the gateway Service first lets GKE remove the internal load
	# balancer it created, which would otherwise hold on to the subnet.
	if gcloud container clusters get-credentials "${CLUSTER}" --zone="${ZONE}" >/dev/null 2>&1; then
		kubectl delete namespace "${GATEWAY_NAMESPACE}" --ignore-not-found --wait=true || true
	fi
	gcloud container clusters delete "${CLUSTER}" --zone="${ZONE}" --quiet
fi
if exists gcloud compute firewall-rules describe "${WEBHOOK_FIREWALL}"; then
	gcloud compute firewall-rules delete "${WEBHOOK_FIREWALL}" --quiet
fi

step "service accounts"
# The project-level bindings go first: once the account is deleted they can
# only be named by its uid.
if exists gcloud iam service-accounts describe "${NODE_SA}"; then
	# The role setup.sh grants, and the four an earlier setup.sh granted.
	for role in roles/container.defaultNodeServiceAccount roles/logging.logWriter roles/monitoring.metricWriter \
		roles/monitoring.viewer roles/stackdriver.resourceMetadata.writer; do
		gcloud projects remove-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
			--member="serviceAccount:${NODE_SA}" --role="${role}" >/dev/null 2>&1 || true
	done
fi
# The backend's principal and the frontend's account lose their Identity
# Platform roles, which go too (undeletable for 7 days; setup.sh undeletes
# them if run again meanwhile).
gcloud projects remove-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
	--member="principal://iam.googleapis.com/projects/${PROJECT_NUMBER}/locations/global/workloadIdentityPools/${PROJECT_ID}.svc.id.goog/subject/ns/${BACKEND_NAMESPACE}/sa/${BACKEND_KSA}" \
	--role="projects/${PROJECT_ID}/roles/${BACKEND_ROLE}" >/dev/null 2>&1 || true
gcloud projects remove-iam-policy-binding "${PROJECT_ID}" --condition=None --quiet \
	--member="serviceAccount:${FRONTEND_SA}" \
	--role="projects/${PROJECT_ID}/roles/${FRONTEND_ROLE}" >/dev/null 2>&1 || true
for role in "${BACKEND_ROLE}" "${FRONTEND_ROLE}"; do
	# Empty for a live role; True once deleted, "gone" once purged.
	deleted="$(gcloud iam roles describe "${role}" --project="${PROJECT_ID}" --format='value(deleted)' 2>/dev/null || echo gone)"
	if [ -z "${deleted}" ]; then
		gcloud iam roles delete "${role}" --project="${PROJECT_ID}" --quiet >/dev/null
	fi
done
for sa in "${FRONTEND_SA}" "${APICLIENT_SA}" "${NODE_SA}"; do
	if exists gcloud iam service-accounts describe "${sa}"; then
		gcloud iam service-accounts delete "${sa}" --quiet
	fi
done

step "Artifact Registry repository ${AR_REPO}"
if exists gcloud artifacts repositories describe "${AR_REPO}" --location="${REGION}"; then
	gcloud artifacts repositories delete "${AR_REPO}" --location="${REGION}" --quiet
fi

step "network: connector or Cloud Run's subnet, address, NAT, router, subnet, VPC"
if exists gcloud compute networks vpc-access connectors describe "${CONNECTOR}" --region="${REGION}"; then
	gcloud compute networks vpc-access connectors delete "${CONNECTOR}" --region="${REGION}" --quiet
fi
if exists gcloud compute networks subnets describe "${RUN_SUBNET}" --region="${REGION}"; then
	# Cloud Run releases a Direct VPC egress subnet's addresses one to two
	# hours after the service is deleted; until then the subnet cannot go
	# (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc).
	if ! gcloud compute networks subnets delete "${RUN_SUBNET}" --region="${REGION}" --quiet; then
		echo "${RUN_SUBNET} is still in use by Cloud Run: run teardown.sh again in two hours" >&2
		exit 1
	fi
fi
if exists gcloud compute addresses describe "${GATEWAY_ADDRESS_NAME}" --region="${REGION}"; then
	gcloud compute addresses delete "${GATEWAY_ADDRESS_NAME}" --region="${REGION}" --quiet
fi
if exists gcloud compute routers nats describe "${NAT}" --router="${ROUTER}" --region="${REGION}"; then
	gcloud compute routers nats delete "${NAT}" --router="${ROUTER}" --region="${REGION}" --quiet
fi
if exists gcloud compute routers describe "${ROUTER}" --region="${REGION}"; then
	gcloud compute routers delete "${ROUTER}" --region="${REGION}" --quiet
fi
if exists gcloud compute networks subnets describe "${GKE_SUBNET}" --region="${REGION}"; then
	gcloud compute networks subnets delete "${GKE_SUBNET}" --region="${REGION}" --quiet
fi
if exists gcloud compute networks describe "${NETWORK}"; then
	gcloud compute networks delete "${NETWORK}" --quiet
fi

step "done: ${PROJECT_ID} holds nothing of this sample any more (Identity Platform stays enabled)"
