#!/usr/bin/env bash
# Set up everything this repository needs on a fresh Debian/Ubuntu machine:
#   - ffmpeg/ffprobe from apt when missing (the tests' independent oracle), and chromium,
#     chromium-driver, libokhttp-java, php-cli, php-curl (the web page's and examples' tests),
#   - a .venv at the repository root with every Python package installed.
# Idempotent: re-running skips what is already in place. Env: PYTHON=/path/to/python3.11
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$c"; return
    fi
  done
  say "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)"; exit 1
}

has() { command -v "$1" >/dev/null 2>&1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  [ -n "${APT_UPDATED:-}" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if ! has ffprobe || ! has ffmpeg; then
  say "installing ffmpeg with apt"
  apt_install ffmpeg
fi
# The tests' other independent oracles, when missing (VSR_BOOTSTRAP_NO_EXTRAS=1 skips them; their
# tests then skip and say why): a real browser for the web page, and OkHttp and PHP to run the
# Java and PHP examples of docs/api.md (javac comes with the machine's JDK when it has one).
extras=()
{ has chromium && has chromedriver; } || extras+=(chromium chromium-driver)
[ -f /usr/share/java/okhttp.jar ] || extras+=(libokhttp-java)
{ has php && php -m 2>/dev/null | grep -qx curl; } || extras+=(php-cli php-curl)
if [ "${#extras[@]}" -gt 0 ] && [ -z "${VSR_BOOTSTRAP_NO_EXTRAS:-}" ]; then
  say "installing ${extras[*]} with apt"
  apt_install "${extras[@]}" || say "could not install ${extras[*]}: the tests that need them will skip"
fi

PY=$(pick_python)
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.vsr-bootstrap
want=$(cat requirements.txt requirements-dev.txt constraints.txt client/pyproject.toml runtime/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
  echo "$want" > "$stamp"
fi
# Real-ESRGAN weights: converted once from the bundled ncnn files into ~/.cache/vsr/models
# (or $VSR_MODEL_CACHE); a no-op when already there. Nothing is downloaded.
.venv/bin/vsr-worker models --convert >/dev/null
say "ready: $(.venv/bin/python --version), ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3)"
