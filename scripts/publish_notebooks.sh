#!/usr/bin/env bash
# Put the Colab/Jupyter edition (make notebooks) on the `notebooks` branch, which the launch buttons open
# (repository.branch in _config.yml; Jupyter Book builds the Colab and Binder links from it). The branch is
# main's tree with book/*.ipynb replaced by the edition, so Binder finds environment.yml and the package
# there, and a chapter keeps its path. One commit on top of the current commit, replacing the branch.
#
#   make notebooks && scripts/publish_notebooks.sh           # update the local branch
#   make notebooks && scripts/publish_notebooks.sh origin    # ... and force-push it (CI, after main moves)
set -euo pipefail
cd "$(dirname "$0")/.."
branch=notebooks
edition=_build/notebooks/book
ls "$edition"/*.ipynb >/dev/null 2>&1 || { echo "no edition in $edition: run make notebooks first" >&2; exit 1; }
work=$(mktemp -d)
trap 'git worktree remove --force "$work" >/dev/null 2>&1 || rm -rf "$work"' EXIT
git worktree add --quiet --detach "$work" HEAD
for nb in "$edition"/*.ipynb; do
    test -f "$work/book/$(basename "$nb")" || { echo "$(basename "$nb") is not a chapter of HEAD" >&2; exit 1; }
    cp "$nb" "$work/book/"
done
git -C "$work" add book
git -C "$work" -c user.name="zfviz editions" -c user.email="editions@zfviz.invalid" \
    commit --quiet -m "Colab/Jupyter edition of $(git rev-parse --short HEAD) (scripts/publish_notebooks.sh)"
git branch --force "$branch" "$(git -C "$work" rev-parse HEAD)"
echo "branch $branch -> $(git rev-parse --short "$branch")"
if [ $# -ge 1 ]; then git push --force "$1" "$branch"; fi
