/* SPDX-License-Identifier: MIT */
/*
 * sdnotify — the service manager's readiness protocol without libsystemd:
 * one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
 * "@name" for the abstract namespace). With Type=notify, systemd holds
 * `systemctl start` until sluiced says READY=1: BPF attached, listeners
 * bound, workers running. Outside systemd there is no variable and nothing
 * is sent.
 */
#ifndef SLUICE_SDNOTIFY_H
#define SLUICE_SDNOTIFY_H

/*
 * Send STATE ("READY=1", "STOPPING=1", "STATUS=...", lines joined by \n).
 * 0 when sent or when there is no $NOTIFY_SOCKET; -errno otherwise (worth a
 * log line at most: the daemon runs on either way).
 */
int sdnotify_send(const char *state);

#endif
