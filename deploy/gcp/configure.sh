#!/usr/bin/env bash
# Writes the settings of deploy/gcp/config.sh into the files that are
# deployed as they are, so that config.sh is their one source: the project id
# (istio/project.env, which kustomize copies on), the Cloud Run service
# (project, region, name, identity, gateway address, VPC egress, web API key),
# skaffold's Cloud Run region, and the name of the gateway's reserved address.
# Then it saves the settings, so that `source deploy/gcp/config.sh` in a new
# terminal gets them back.
#
# Each edit replaces the value after a fixed key, so running it again with
# other values (or the same) is safe. setup.sh runs it too.
#
#   PROJECT_ID=my-project REGION=europe-west1 deploy/gcp/configure.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
# shellcheck source=deploy/gcp/config.sh
source "${here}/config.sh"

case "${VPC_EGRESS}" in
connector) egress="run.googleapis.com/vpc-access-connector: ${CONNECTOR}" ;;
direct) egress="run.googleapis.com/network-interfaces: '[{\"network\":\"${NETWORK}\",\"subnetwork\":\"${RUN_SUBNET}\"}]'" ;;
*)
	echo "VPC_EGRESS=${VPC_EGRESS}: want connector or direct" >&2
	exit 1
	;;
esac
for v in PROJECT_ID REGION FRONTEND_SERVICE FRONTEND_SA GATEWAY_IP GATEWAY_ADDRESS_NAME FIREBASE_API_KEY egress; do
	if [[ "${!v}" == *"#"* || "${!v}" == *"&"* || "${!v}" == *$'\n'* ]]; then
		echo "${v}=${!v}: a value here cannot hold #, & or a newline" >&2
		exit 1
	fi
done

# edit FILE SED-SCRIPT: rewrites FILE in place, portably (BSD sed has no
# plain -i). deploy/configure_test.go checks every key is still found.
edit() {
	local file="${repo}/$1" script="$2" out
	out="$(sed -E "${script}" "${file}")"
	printf '%s\n' "${out}" >"${file}"
}
# value NAME VALUE: the sed command that sets the env var NAME's value line.
value() { printf '/- name: %s$/{n;s#(value: ).*#\\1%s#;}\n' "$1" "$2"; }

api_key="${FIREBASE_API_KEY:-FIREBASE_API_KEY}" # the placeholder until setup.sh made the key
edit istio/project.env "s#^PROJECT_ID=.*#PROJECT_ID=${PROJECT_ID}#"
edit deploy/cloudrun/frontend.yaml "
s#^(  name: ).*#\\1${FRONTEND_SERVICE}#
s#^(  namespace: ).*#\\1${PROJECT_ID}#
s#^(    cloud\\.googleapis\\.com/location: ).*#\\1${REGION}#
s#^( +)run\\.googleapis\\.com/(vpc-access-connector|network-interfaces): .*#\\1${egress}#
s#^( +serviceAccountName: ).*#\\1${FRONTEND_SA}#
$(value GOOGLE_CLOUD_PROJECT "${PROJECT_ID}")
$(value GATEWAY_URL "https://${GATEWAY_IP}")
$(value FIREBASE_API_KEY "${api_key}")"
# The machine caller's job: the frontend's egress, its own account.
edit deploy/cloudrun/apiclient-job.yaml "
s#^(  namespace: ).*#\\1${PROJECT_ID}#
s#^(    cloud\\.googleapis\\.com/location: ).*#\\1${REGION}#
s#^( +)run\\.googleapis\\.com/(vpc-access-connector|network-interfaces): .*#\\1${egress}#
s#^( +serviceAccountName: ).*#\\1${APICLIENT_SA}#
$(value APICLIENT_SERVICE_ACCOUNT "${APICLIENT_SA}")
$(value API_URL "https://${GATEWAY_IP}/api/secure.json")"
edit skaffold.yaml "s#^( +region: ).*#\\1${REGION}#"
edit deploy/kubernetes/ingress-gateway/service.yaml \
	"s#^( +networking\\.gke\\.io/load-balancer-ip-addresses: ).*#\\1${GATEWAY_ADDRESS_NAME}#"

mkdir -p "${STATE_DIR}"
chmod 700 "${STATE_DIR}"
{
	echo "# Saved by deploy/gcp/configure.sh; read by deploy/gcp/config.sh. The environment overrides each."
	for v in "${SETTINGS[@]}"; do
		# shellcheck disable=SC2016 # ${v:-saved} is written for config.sh to expand
		printf '%s=${%s:-%q}\n' "${v}" "${v}" "${!v}"
	done
} >"${STATE_DIR}/config.env"

echo "configured ${PROJECT_ID} (${REGION}, VPC egress: ${VPC_EGRESS}); settings saved in ${STATE_DIR}/config.env"
