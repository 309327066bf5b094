#!/usr/bin/env bash
# The worker (and the contract it imports) runs in the Inf1 image on Python 3.10 with
# torch 1.13: check that no newer-only syntax or standard-library API slipped in.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/vermin --no-tips --violations --target=3.10- --eval-annotations \
  --exclude-regex '(^|/)tests?/' runtime/worker/vsr_worker client/vsr_client
echo "compat: worker and contract are Python 3.10 compatible"
