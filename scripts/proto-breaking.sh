#!/usr/bin/env bash
# buf breaking against what the protos were before this change: the working tree (committed or
# not) against the previous commit, HEAD~1 (on a merge commit: the branch it was merged into), and
# against the newest release tag when there is one. Comparing against a branch name would compare
# main with itself once the change is on main, and let a breaking change through.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

has_parent() {
  git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null
}

# A shallow clone (CI checkouts often are) may lack the parent: fetch one more commit.
if ! has_parent && [ "$(git rev-parse --is-shallow-repository)" = "true" ]; then
  git fetch -q --deepen=1 2>/dev/null || true
  if ! has_parent; then
    echo "proto-breaking: shallow clone without its parent commit, and fetching it failed: clone with --depth 2 or more" >&2
    exit 1
  fi
fi

if has_parent; then
  parent="$(git rev-parse HEAD~1)"
  echo "proto-breaking: against the previous commit ${parent:0:12}"
  npx buf breaking --against ".git#ref=${parent}"
else
  echo "proto-breaking: the first commit; nothing to compare against"
fi

tag="$(git describe --tags --abbrev=0 2>/dev/null || true)"
if [ -n "$tag" ]; then
  echo "proto-breaking: against the newest tag ${tag}"
  npx buf breaking --against ".git#tag=${tag}"
fi
