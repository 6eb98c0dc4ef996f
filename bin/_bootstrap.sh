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
