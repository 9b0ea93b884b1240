#!/usr/bin/env bash
# Runs a command with ROS 2 (Fast DDS) confined to this host, for the tests and the benchmark:
#  - ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (this distro silently ignores ROS_LOCALHOST_ONLY)
#    and a random ROS_DOMAIN_ID, so no other ROS graph is joined or disturbed;
#  - as root, a fresh network namespace with only `lo` up (unshare -n): Fast DDS still binds a
#    UDP socket on every interface, so without it a packet to another host is merely unlikely;
#    there it is impossible. Unprivileged, a user namespace is tried (unshare -rn), else the
#    command runs with the environment only, and says so.
# The Unix socket to dvtd is a file, so it works across the namespace.
# Usage: isolated.sh CMD [ARGS...]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: isolated.sh CMD [ARGS...]" >&2; exit 2; }
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_LOCALHOST_ONLY ROS_STATIC_PEERS
export ROS_DOMAIN_ID="${DVT_ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
inner='ip link set lo up && exec "$@"'
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n -- sh -c "$inner" sh "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c "$inner" sh "$@"
fi
echo "isolated.sh: no network namespace available; DDS is limited by ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST only" >&2
exec "$@"
