#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# One-time setup of a checkout on a machine with Python 3.11 (Linux, macOS):
#
#   bash tools/setup.sh          # .venv: bpy 5.0.1 + the pinned dev tools (requirements-dev.txt)
#   bash tools/setup.sh --lts    # also .venv-4.5.15 and .venv-4.2.23 for the smoke subset
#
# In each venv the checkout is linked into site-packages as the package `dataset_forge`, the way
# Blender imports it as an extension, so `python -m dataset_forge ...` and `import dataset_forge`
# work. Re-running is cheap: existing venvs are kept and pip skips what is installed.
# PYTHON=/path/to/python3.11 picks the interpreter.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

lts=0
for arg in "$@"; do
    case "$arg" in
        --lts) lts=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument '$arg' (use --lts or --help)" >&2; exit 1 ;;
    esac
done

python="${PYTHON:-}"
if [ -z "$python" ]; then
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 \
            && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            python="$cand"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "setup.sh: Python 3.11 not found (the bpy wheels need exactly 3.11); set PYTHON=..." >&2
    exit 1
fi

# make_venv DIR REQUIREMENTS...: create the venv if missing, install, link the package.
make_venv() {
    local dir="$1"
    shift
    if [ ! -x "$dir/bin/python" ]; then
        echo "== creating $dir"
        "$python" -m venv "$dir"
    fi
    echo "== installing into $dir: $*"
    "$dir/bin/python" -m pip install --disable-pip-version-check -q "$@"
    local site
    site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    ln -sfn "$repo" "$site/dataset_forge"
    # Check the result; a throw-away Blender user folder keeps ~/.config untouched.
    BLENDER_USER_RESOURCES="$(mktemp -d)" "$dir/bin/python" -c 'import os, sys, dataset_forge, bpy
print("   dataset_forge", dataset_forge.__version__, "with bpy", bpy.app.version_string)
sys.stdout.flush(); os._exit(0)' 2>/dev/null | grep dataset_forge
}

make_venv .venv -r requirements-dev.txt

if [ "$lts" = 1 ]; then
    # The same pins as .venv except bpy (and no ruff); bpy 4.2 does not pin numpy itself.
    # shellcheck disable=SC2207 # one pin per line, no spaces (bash 3.2 on macOS has no mapfile)
    common=($(grep -v -E '^[[:space:]]*(#|$)|^(bpy|ruff)==' requirements-dev.txt))
    make_venv .venv-4.5.15 bpy==4.5.15 "${common[@]}"
    make_venv .venv-4.2.23 bpy==4.2.23 "${common[@]}"
fi
echo "== setup done"
