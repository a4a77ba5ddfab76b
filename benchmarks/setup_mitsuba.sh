#!/usr/bin/env bash
# Install Mitsuba 3 (+ Dr.Jit) as a peer renderer for the benchmarks.
#
# Idempotent: safe to run repeatedly. Needs root for apt-get (it is root on
# the dev / CI machines). Mitsuba's CPU variants (llvm_*) JIT-compile through
# a shared libLLVM that is loaded at run time, so we install Debian's libLLVM 19
# and tell Dr.Jit where it is via DRJIT_LIBLLVM_PATH (benchmarks/_mitsuba_peer.py
# sets that variable itself when it is unset).
#
# Usage:  bash benchmarks/setup_mitsuba.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

# 1. libLLVM 19 (Debian bookworm package: libllvm19).
if ! dpkg-query -W -f='${Status}' libllvm19 2>/dev/null | grep -q "install ok installed"; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends libllvm19; then
        apt-get update
        apt-get install -y --no-install-recommends libllvm19
    fi
fi

# 2. mitsuba + drjit into the venv, without touching the pinned torch.
if ! "$PY" -c "import mitsuba, drjit" 2>/dev/null; then
    "$PY" -m pip install -c constraints.txt mitsuba drjit
fi

# 3. Smoke test: the LLVM AD variant must load (the helper sets DRJIT_LIBLLVM_PATH).
"$PY" - <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
import _mitsuba_peer as peer
ok, why = peer.available()
print("mitsuba llvm_ad_rgb:", "ok" if ok else "NOT available", "-", why)
sys.exit(0 if ok else 1)
EOF
