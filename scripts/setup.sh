#!/usr/bin/env bash
# Install improv into ./.venv (CPU torch pinned by constraints.txt). With --dev, also
# what the tests need: the dev extras and the real services (jackd2, mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--dev" ]]; then
  missing=()
  command -v jackd >/dev/null 2>&1 || missing+=(jackd2)
  command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
  if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  extras=".[dev]"
else
  extras="."
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e "$extras"
