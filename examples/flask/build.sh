#!/bin/sh
# baton's build step for this app ([build] command = ["sh", "build.sh"]): give the release a
# virtualenv for its requirements.txt.
#
# Virtualenvs live next to the releases, in <state>/venvs/<key>, keyed by the Python version and
# the exact bytes of requirements.txt:
# - unchanged requirements: the release links the existing venv; nothing is installed;
# - changed requirements: a new venv is installed beside the old one, which the serving release
#   keeps using meanwhile;
# - a venv is used only once `.complete` exists in it, written after pip succeeded: a failed or
#   interrupted install is never linked (the deploy fails, the old release keeps serving) and is
#   removed and redone by the next build with the same requirements.
# Venvs no release links to any more are removed, so rollbacks within `keep` still work.
set -eu

release=${BATON_RELEASE_DIR:-$PWD}
releases=$(dirname "$release")
venvs=${VENVS:-$(dirname "$releases")/venvs}
python=${PYTHON:-python3}

key=$({ "$python" -c 'import sys; print(sys.version)'; cat requirements.txt; } | sha256sum | cut -c1-16)
venv="$venvs/$key"
mkdir -p "$venvs"

if [ -e "$venv/.complete" ]; then
    echo "venv $key: requirements.txt unchanged, reusing $venv"
else
    rm -rf "$venv"
    echo "venv $key: installing requirements.txt into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --no-input -q -r requirements.txt
    touch "$venv/.complete"
fi
ln -sfn "$venv" .venv

for dir in "$venvs"/*; do
    [ -d "$dir" ] && [ "$dir" != "$venv" ] || continue
    in_use=no
    for link in "$releases"/*/.venv; do
        [ "$(readlink "$link" 2>/dev/null || true)" = "$dir" ] && in_use=yes
    done
    if [ "$in_use" = no ]; then
        echo "venv $(basename "$dir"): no release uses it, removing"
        rm -rf "$dir"
    fi
done
