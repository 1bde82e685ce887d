#!/usr/bin/env bash
# 54-stalled-peers with TLS on both sides of every stalled connection: each
# client-facing listener's pool is a TLS listener of the same one-worker
# sluiced, so the 1000 + 1000 stalled peers stall TLS sinks and sources,
# server and client (4000 stalled TLS connections), and the fresh clients'
# echoes cross both TLS layers too.
# timeout: 180
STALL_TLS=1 exec "$(dirname "$0")/54-stalled-peers.sh"
