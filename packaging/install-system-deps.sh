#!/usr/bin/env bash
# Install the Debian packages that BioSegment's tests need beyond Python packages.
# Tests that need a missing program skip with a message naming it; this script says loudly
# when it cannot install something, so a skip is never silent.
# With the argument `window`, only the packages the desktop window needs (`make run`).
set -u
ONLY="${1:-}"
PACKAGES=()
[ -z "$ONLY" ] && PACKAGES=(${BIOSEGMENT_TEST_PACKAGES:-})
while read -r pkg why; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  [[ -n "$ONLY" && "$why" != "$ONLY:"* ]] && continue
  PACKAGES+=("$pkg")
done < "$(dirname "$0")/system-packages.txt"

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${PACKAGES[*]:-none needed})"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: apt-get not found; cannot install: ${missing[*]}." >&2
  echo "WARNING: tests that need them will be SKIPPED (each names the missing program)." >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "WARNING: not root and no password-less sudo; cannot install: ${missing[*]}." >&2
    echo "WARNING: tests that need them will be SKIPPED (each names the missing program)." >&2
    exit 0
  fi
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || echo "WARNING: apt-get update failed" >&2
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "WARNING: apt-get install failed for: ${missing[*]}; tests needing them will be SKIPPED." >&2
fi
exit 0
