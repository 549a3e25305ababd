#!/usr/bin/env bash
# Install improv into ./.venv (CPU torch pinned by constraints.txt), with the built-in
# synth (FluidSynth and a General MIDI SoundFont). With --dev, also what the tests need:
# the dev extras and the real services (jackd2, mosquitto, chromium for the web page).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# the built-in synth: libfluidsynth and a GM SoundFont (skipped where apt is absent)
[[ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]] || missing+=(fluid-soundfont-gm)
ldconfig -p 2>/dev/null | grep -q libfluidsynth || missing+=(fluidsynth)
if [[ "${1:-}" == "--dev" ]]; then
  command -v jackd >/dev/null 2>&1 || missing+=(jackd2)
  command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  extras=".[dev]"
else
  extras="."
fi
if ((${#missing[@]})) && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e "$extras"
