/*
 * fake_bridge.h: test support. A minimal, single-threaded server side of the Tote wire protocol
 * that plays the automation bridge on loopback TCP: it accepts one controller connection at a
 * time (a new one replaces the old), answers the handshake, records every ControllerMessage it
 * receives (decoded), returns flow-control credit at once, answers PINGs, and sends whatever
 * BridgeMessages and STATUS the test asks for. Not a bridge: it decides nothing by itself.
 */
#ifndef FAKE_BRIDGE_H
#define FAKE_BRIDGE_H

#include "ctl_wire.h"

#include "tote/v1/automation.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most received messages kept. */
#define MAX_RX 4096

/* The fake bridge's state. */
typedef struct fake_bridge {
    int listen_fd, port;
    int fd;          /* the current controller connection, -1 if none */
    int got_preface; /* preface and SETTINGS received */
    uint32_t stream; /* the Connect call */
    char method[128], auth[128];
    int call_open, peer_goaway, peer_half_closed, eof;
    unsigned connections;
    ctl_buf in, out;
    /* Everything the controller sent (decoded), across connections. */
    Tote__V1__ControllerMessage *rx[MAX_RX];
    size_t rx_count;
    /* When set, each received message goes here (and is freed afterwards) instead of rx. */
    void (*on_message)(struct fake_bridge *b, const Tote__V1__ControllerMessage *m, void *user);
    void *user;
} fake_bridge;

/* Listens on 127.0.0.1 (port 0 = any free port, stored in b->port). */
void fb_init(fake_bridge *b, int port);
/* Closes the controller connection abruptly (a network failure as the controller sees it). */
void fb_drop(fake_bridge *b);
/* Closes everything and frees the recorded messages. */
void fb_free(fake_bridge *b);
/* Queues a raw frame. */
void fb_frame(fake_bridge *b, uint8_t type, uint32_t stream, const void *p, uint32_t n);
/* Queues a BridgeMessage on the Connect call. */
void fb_send(fake_bridge *b, const Tote__V1__BridgeMessage *m);
/* Ends the Connect call with a STATUS. */
void fb_status(fake_bridge *b, int code, const char *msg);
/* One non-blocking step: accept, read and handle frames, write. */
void fb_step(fake_bridge *b);
/* The nth (0-based) received message with the given body case, or NULL. */
const Tote__V1__ControllerMessage *fb_find(const fake_bridge *b, int body_case, size_t nth);
/* How many received messages have the given body case. */
size_t fb_count(const fake_bridge *b, int body_case);
/* The sequence of the last ControllerAck received (0 if none). */
uint64_t fb_last_ack(const fake_bridge *b);

#ifdef __cplusplus
}
#endif

#endif /* FAKE_BRIDGE_H */
