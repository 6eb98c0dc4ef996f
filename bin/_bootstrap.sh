# Sourced by bin/mailpulse and bin/test: make sure .venv exists and holds this
# checkout installed (editable, with the dev extras). Re-installs only when
# pyproject.toml changes, so the second run starts at once.
set -euo pipefail
MAILPULSE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MAILPULSE_VENV:-$MAILPULSE_ROOT/.venv}

_find_python() {
  for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "mailpulse needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  py=$(_find_python)
  echo "mailpulse: creating virtualenv $VENV" >&2
  "$py" -m venv "$VENV"
fi
_want=$(cat "$MAILPULSE_ROOT/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.mailpulse-installed" 2>/dev/null)" != "$_want" ]; then
  echo "mailpulse: installing dependencies into $VENV (first run only)" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$MAILPULSE_ROOT[dev]" >&2
  echo "$_want" > "$VENV/.mailpulse-installed"
fi

# Tools the tests drive for real (promtool and a Prometheus server, from Debian's
# `prometheus` package). Installed with apt when this is a Debian-like machine and
# we may (root, or sudo without a password); otherwise one line says what to install,
# and the tests that need them fail under CI=true (skip elsewhere).
ensure_test_tools() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
    echo "mailpulse: installing Debian's prometheus package (promtool, prometheus) for the tests" >&2
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 \
           && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }; then
      return 0
    fi
  fi
  echo "mailpulse: promtool/prometheus not found: install Prometheus 2.x (Debian/Ubuntu: apt-get install prometheus) for the alert and Prometheus tests" >&2
}

# Helm, for the chart's tests (helm lint, helm template): built once from its Go
# module with the Go toolchain (about 4 minutes on 2 cores) and cached outside the
# checkout; later runs find the cached binary at once. Without Go (or when the
# build fails) one line says so, and the tests that need helm fail under CI=true
# (skip elsewhere). MAILPULSE_HELM points the tests at the binary.
HELM_VERSION=v3.22.0
HELM_DIR=${MAILPULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailpulse}/helm-$HELM_VERSION
ensure_helm() {
  export MAILPULSE_HELM="$HELM_DIR/helm"
  [ -x "$MAILPULSE_HELM" ] && return 0
  if ! command -v go >/dev/null 2>&1; then
    echo "mailpulse: helm $HELM_VERSION not cached and no Go toolchain to build it: install Go, or put helm at $MAILPULSE_HELM, for the Helm chart tests" >&2
    return 0
  fi
  echo "mailpulse: building helm $HELM_VERSION into $HELM_DIR for the chart tests (first run only, a few minutes)" >&2
  mkdir -p "$HELM_DIR"
  local log="$HELM_DIR/build.log"
  if ! (cd "$HELM_DIR" && GOFLAGS=-mod=mod GOBIN="$HELM_DIR" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$log" 2>&1; then
    echo "mailpulse: building helm $HELM_VERSION failed (see $log); the Helm chart tests will fail under CI=true, skip elsewhere" >&2
  fi
}
