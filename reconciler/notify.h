/* notify.h - systemd readiness notification (sd_notify protocol, no libsystemd).
 *
 * Sends a datagram to $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace).  Without NOTIFY_SOCKET it does nothing and returns 0.
 */
#ifndef MQ_NOTIFY_H
#define MQ_NOTIFY_H

/* e.g. mq_notify("READY=1\nSTATUS=watching 3 vms"); returns 0 or -errno. */
int mq_notify(const char *state);

#endif
