/*
 * ctl_wire.h: internal to libtotectl. A non-blocking client connection for the Tote wire
 * protocol v1 (docs/PROTOCOL.md) that carries ONE streaming call at a time, driven by poll().
 *
 * Frame rules, SETTINGS and GOAWAY handling follow tools/c/tote_client.c (the blocking unary
 * client this code was adapted from); what is new here is the non-blocking state machine,
 * bidirectional MESSAGE flow in both directions and message-credit flow control (§9).
 *
 *   ctl_conn_open()       resolve + start a non-blocking connect; preface + SETTINGS queued
 *   ctl_conn_start_call() queue HEADERS for a method (may be called before the handshake ends)
 *   ctl_conn_send()       queue one MESSAGE (held back while the server gave no credit)
 *   ctl_conn_events()     the poll() events to wait for
 *   ctl_conn_io()         after poll(): write what can be written, read and dispatch frames
 *
 * Nothing is thread-safe: one thread per connection.
 */
#ifndef CTL_WIRE_H
#define CTL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frame types (§3). */
enum {
    CTL_F_SETTINGS = 0x0,
    CTL_F_HEADERS = 0x1,
    CTL_F_MESSAGE = 0x2,
    CTL_F_STATUS = 0x3,
    CTL_F_CANCEL = 0x4,
    CTL_F_WINDOW_UPDATE = 0x5,
    CTL_F_PING = 0x6,
    CTL_F_GOAWAY = 0x7,
    CTL_F_HALF_CLOSE = 0x8,
    CTL_F_MAX_TYPE = 0x8
};

/* GOAWAY error codes (§3). */
enum {
    CTL_E_NO_ERROR = 0,
    CTL_E_PROTOCOL_ERROR = 1,
    CTL_E_FRAME_SIZE_ERROR = 2,
    CTL_E_FLOW_CONTROL_ERROR = 3,
    CTL_E_TIMEOUT = 4,
    CTL_E_CONNECTION_LIMIT = 5,
    CTL_E_INTERNAL_ERROR = 6
};

#define CTL_FLAG_END_STREAM 0x1u
#define CTL_FLAG_ACK 0x1u
#define CTL_HEADER_SIZE 10u
/* Largest frame payload we accept (announced as MAX_FRAME_SIZE). */
#define CTL_MAX_FRAME_SIZE (4u * 1024u * 1024u)
/* Messages the server may send on our call before we return credit (announced INITIAL_WINDOW). */
#define CTL_LOCAL_INITIAL_WINDOW 64u

/* A growable byte buffer. */
typedef struct ctl_buf {
    uint8_t *data;
    size_t len, cap;
} ctl_buf;

/* Appends n bytes; -1 when out of memory. */
int ctl_buf_append(ctl_buf *b, const void *p, size_t n);
/* Drops the first n bytes. */
void ctl_buf_consume(ctl_buf *b, size_t n);
/* Frees the storage. */
void ctl_buf_free(ctl_buf *b);
/* Appends one frame (10-byte header + payload); -1 when out of memory. */
int ctl_buf_put_frame(ctl_buf *b, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                      uint32_t len);

/* A parsed frame header. */
typedef struct ctl_frame_header {
    uint32_t length;
    uint8_t type, flags;
    uint32_t stream;
} ctl_frame_header;

/* Checks a frame header received by a client (docs/PROTOCOL.md §2, in that order). Returns 0, or
 * the GOAWAY code with `why` filled. `max_frame` is our MAX_FRAME_SIZE. Pure. */
uint32_t ctl_check_header(const ctl_frame_header *h, uint32_t max_frame, char *why, size_t cap);

/* Splits complete frames off the front of `in` (n bytes). Returns the bytes one whole frame takes
 * (header + payload) and fills *h, or 0 when more bytes are needed, or -1 for a header that
 * fails ctl_check_header (code in *code, text in why). Pure. */
long ctl_next_frame(const uint8_t *in, size_t n, uint32_t max_frame, ctl_frame_header *h,
                    uint32_t *code, char *why, size_t cap);

/* "SETTINGS", "MESSAGE", ... */
const char *ctl_frame_type_name(unsigned type);
/* "NO_ERROR", "PROTOCOL_ERROR", ...; "UNKNOWN(n)" otherwise. */
const char *ctl_goaway_code_name(uint32_t code);
/* "OK", "UNIMPLEMENTED", ...; "CODE_n" otherwise. */
const char *ctl_status_name(int code);
/* Copies untrusted text, replacing control characters with '?'; always NUL-terminates. */
void ctl_copy_text(char *dst, size_t cap, const char *src, size_t n);

/* Monotonic clock in ms. */
int64_t ctl_now_ms(void);

/* What happened on the connection, reported by ctl_conn_io(). */
typedef struct ctl_conn_handler {
    /* The server's SETTINGS arrived: the handshake is complete. */
    void (*on_ready)(void *user);
    /* One MESSAGE of the call (payload valid during the callback only). Credit is returned
     * automatically once the callback returns. */
    void (*on_message)(void *user, const uint8_t *payload, size_t len);
    /* The call ended with a STATUS (code 0 = OK). */
    void (*on_status)(void *user, int code, const char *message);
    /* The server sent GOAWAY (any code); a non-NO_ERROR one is followed by the connection ending. */
    void (*on_goaway)(void *user, uint32_t code, const char *text);
} ctl_conn_handler;

/* One connection. */
typedef struct ctl_conn ctl_conn;

/* Starts connecting to host:port (non-blocking). The preface and our SETTINGS are queued at once.
 * Returns NULL with errbuf (256 bytes) filled when the name does not resolve or no socket opens. */
ctl_conn *ctl_conn_open(const char *host, int port, const char *api_key, char *errbuf, size_t cap);

/* Queues HEADERS opening a client/bidi-streaming call to `method`. Only one call at a time.
 * timeout_ms > 0 sets the call deadline. Returns 0, or -1 if a call is already open. */
int ctl_conn_start_call(ctl_conn *c, const char *method, uint64_t timeout_ms);

/* Queues one MESSAGE on the open call. It goes out once the server has granted credit. Returns 0,
 * or -1 (no open call, the message is larger than the server's MAX_FRAME_SIZE, out of memory). */
int ctl_conn_send(ctl_conn *c, const uint8_t *payload, size_t len);

/* Ends our side of the call (HALF_CLOSE, after every queued message). */
int ctl_conn_half_close(ctl_conn *c);

/* Queues a PING (keepalive from our side); the peer's ACK resets ctl_conn_last_rx_ms(). */
int ctl_conn_ping(ctl_conn *c);

/* The descriptor to poll, and the events to poll it for. */
int ctl_conn_fd(const ctl_conn *c);
short ctl_conn_events(const ctl_conn *c);

/* Handles poll() results (revents, 0 allowed: just flush). Returns 0 while the connection is up,
 * -1 once it failed or closed (ctl_conn_error() says why). */
int ctl_conn_io(ctl_conn *c, short revents, const ctl_conn_handler *h, void *user);

/* 1 once the server's SETTINGS arrived. */
int ctl_conn_ready(const ctl_conn *c);
/* 1 while a call is open (HEADERS sent, no STATUS yet). */
int ctl_conn_call_open(const ctl_conn *c);
/* Messages waiting for server credit. */
size_t ctl_conn_blocked_messages(const ctl_conn *c);
/* When the last bytes arrived from the server (ctl_now_ms clock). */
int64_t ctl_conn_last_rx_ms(const ctl_conn *c);
/* Why the connection failed ("" while it has not). */
const char *ctl_conn_error(const ctl_conn *c);

/* Fails the connection now (GOAWAY NO_ERROR with `reason`, best effort; socket closed) without
 * freeing it: safe inside handler callbacks. ctl_conn_io() then returns -1 and ctl_conn_error()
 * is `reason`. */
void ctl_conn_abort(ctl_conn *c, const char *reason);

/* Sends GOAWAY(NO_ERROR) when possible (best effort, no waiting), closes, frees. NULL allowed. */
void ctl_conn_close(ctl_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* CTL_WIRE_H */
