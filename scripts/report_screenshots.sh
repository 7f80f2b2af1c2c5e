#!/usr/bin/env bash
# Screenshots of seqae's HTML report in headless Chromium, to check by eye
# that no label overlaps or is missing and the layout holds.
#
#   scripts/report_screenshots.sh REPORT.html [OUTDIR]
#
# REPORT.html: a report written by `make report` / `seqae report`.
# OUTDIR (default: screenshots/): one PNG per window width, named
# <report>_<width>.png: 1400 px (a desktop) and 800 px (a laptop window
# halved), each HEIGHT px tall (default 9000; raise it for a long report:
# the page below it is cut).
#
# Environment: CHROMIUM (default: the first of chromium, chromium-browser,
# google-chrome on PATH), HEIGHT, WIDTHS (default "1400 800").
# Chromium on Debian/Ubuntu: apt-get install chromium.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 REPORT.html [OUTDIR]   (REPORT.html: written by make report / seqae report)" >&2
  exit 2
fi
report=$(realpath "$1")
outdir=${2:-screenshots}
height=${HEIGHT:-9000}
widths=${WIDTHS:-1400 800}

browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null; then browser=$name; break; fi
  done
fi
if [ -z "$browser" ]; then
  echo "$0: no Chromium found: apt-get install chromium, or set CHROMIUM" >&2
  exit 1
fi

mkdir -p "$outdir"
# A profile folder of its own, removed afterwards, so that a running browser
# is not disturbed; --no-sandbox for root (containers, CI).
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
stem=$(basename "$report" .html)
for width in $widths; do
  out="$(realpath "$outdir")/${stem}_${width}.png"
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$width,$height" \
    --screenshot="$out" "file://$report" >/dev/null 2>&1
  if [ ! -s "$out" ]; then
    echo "$0: Chromium wrote no screenshot for width $width" >&2
    exit 1
  fi
  echo "$out"
done
