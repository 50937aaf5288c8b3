#!/usr/bin/env bash
# Renders an `rlp report` page in headless Chromium (Debian's package, installed when missing)
# and writes a PNG of it; fails if the page logged to the console or asked for anything but its
# own file.
#
#     scripts/screenshot-report.sh runs/f1-edge/report/report.html report.png [width] [height]
set -euo pipefail
page=$(realpath "$1")
png=$(realpath -m "$2")
width=${3:-1280}
height=${4:-6000}
if ! command -v chromium >/dev/null; then
    echo "installing Debian's chromium" >&2
    sudo_if_needed=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo_if_needed apt-get install -y -q chromium >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No resolver, and a net log in which the page's requests (those under its file:// origin, not
# the browser's own traffic) are listed: each fails, and fails the check.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --no-first-run --disable-features=SpellcheckService,Translate \
    --user-data-dir="$work/profile" \
    --host-resolver-rules="MAP * ~NOTFOUND" \
    --log-net-log="$work/net.json" \
    --enable-logging=stderr --v=0 \
    --window-size="$width,$height" \
    --screenshot="$png" "file://$page" 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
}
status=0
if grep -q "CONSOLE" "$work/stderr"; then
    echo "the page logged to the console:" >&2
    grep "CONSOLE" "$work/stderr" >&2
    status=1
fi
# The page's own requests are those isolated under its file:// origin.
requests=$(python3 - "$work/net.json" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
for event in log["events"]:
    p = event.get("params", {})
    if event["type"] == start and "file://" in p.get("network_isolation_key", "") \
            and not p.get("url", "").startswith("file://"):
        print(p["url"])
PY
)
if [ -n "$requests" ]; then
    echo "the page made requests beyond its file:" >&2
    echo "$requests" >&2
    status=1
fi
[ -s "$png" ] || { echo "no screenshot written" >&2; exit 1; }
[ "$status" = 0 ] && echo "wrote $png (${width}x${height}); console clean; no request beyond the file" >&2
exit $status
