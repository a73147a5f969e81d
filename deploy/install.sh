#!/usr/bin/env bash
# Install smc-trader as systemd services for this checkout (the folder above deploy/).
#
#   sudo deploy/install.sh [--user USER] [--worker]
#       renders the units and the logrotate file, installs them into /etc, enables and
#       starts smc-trader-prefect and smc-trader (or, with --worker, smc-trader-worker:
#       the work-pool path; run `prefect deploy --all` once first).
#   deploy/install.sh --render DIR [--home DIR] [--user USER]
#       only writes the rendered files into DIR (what the tests verify).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
home="$(cd "$here/.." && pwd)"
user="${SUDO_USER:-$(id -un)}"
render_dir=""
cycle_unit="smc-trader.service"

while [ $# -gt 0 ]; do
  case "$1" in
    --user) user="$2"; shift 2 ;;
    --home) home="$2"; shift 2 ;;
    --render) render_dir="$2"; shift 2 ;;
    --worker) cycle_unit="smc-trader-worker.service"; shift ;;
    *) echo "install.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

render() {  # render SOURCE DEST
  sed -e "s|@HOME@|$home|g" -e "s|@USER@|$user|g" "$1" > "$2"
}

units=(smc-trader-prefect.service smc-trader.service smc-trader-worker.service)
if [ -n "$render_dir" ]; then
  mkdir -p "$render_dir"
  for unit in "${units[@]}"; do render "$here/$unit" "$render_dir/$unit"; done
  render "$here/logrotate.conf" "$render_dir/smc-trader.logrotate"
  exit 0
fi

if [ ! -x "$home/.venv/bin/trader" ]; then
  echo "install.sh: $home/.venv/bin/trader is missing: run 'make install' in $home first" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0), or use --render DIR to only write the files" >&2
  exit 1
fi
install -d -o "$user" -g "$user" "$home/logs"
for unit in "${units[@]}"; do render "$here/$unit" "/etc/systemd/system/$unit"; done
render "$here/logrotate.conf" /etc/logrotate.d/smc-trader
systemctl daemon-reload
systemctl enable --now smc-trader-prefect.service "$cycle_unit"
echo "installed: smc-trader-prefect.service and $cycle_unit (journalctl -u, logs in $home/logs)"
