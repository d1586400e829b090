/*
 * ctl_wire.c: the non-blocking Tote wire-protocol connection behind libtotectl. See ctl_wire.h.
 * Frame checks, SETTINGS parsing and the GOAWAY rules mirror tools/c/tote_client.c.
 */
#define _POSIX_C_SOURCE 200809L

#include "ctl_wire.h"

#include "tote/v1/rpc.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define DEFAULT_MAX_FRAME_SIZE (4u * 1024u * 1024u)
#define MIN_MAX_FRAME_SIZE (16u * 1024u)
#define DEFAULT_INITIAL_WINDOW 64u
#define MAX_STREAM_ID 0x7ffffffeu

static const uint8_t PREFACE[8] = {'T', 'O', 'T', 'E', '/', '1', '\r', '\n'};

/* ---- Helpers ------------------------------------------------------------------------------ */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)((unsigned)p[0] << 8 | p[1]); }

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int64_t ctl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_buf_append(ctl_buf *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ctl_buf_consume(ctl_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void ctl_buf_free(ctl_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int ctl_buf_put_frame(ctl_buf *b, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                      uint32_t len) {
    uint8_t h[CTL_HEADER_SIZE];
    put_u32(h, len);
    h[4] = type;
    h[5] = flags;
    put_u32(h + 6, stream);
    if (ctl_buf_append(b, h, sizeof h) != 0) return -1;
    return ctl_buf_append(b, payload, len);
}

const char *ctl_frame_type_name(unsigned type) {
    static const char *const names[] = {"SETTINGS", "HEADERS", "MESSAGE", "STATUS", "CANCEL",
                                        "WINDOW_UPDATE", "PING", "GOAWAY", "HALF_CLOSE"};
    return type <= CTL_F_MAX_TYPE ? names[type] : "UNKNOWN";
}

const char *ctl_goaway_code_name(uint32_t code) {
    static char other[32];
    static const char *const names[] = {"NO_ERROR", "PROTOCOL_ERROR", "FRAME_SIZE_ERROR",
                                        "FLOW_CONTROL_ERROR", "TIMEOUT", "CONNECTION_LIMIT",
                                        "INTERNAL_ERROR"};
    if (code < sizeof names / sizeof names[0]) return names[code];
    snprintf(other, sizeof other, "UNKNOWN(%u)", (unsigned)code);
    return other;
}

const char *ctl_status_name(int code) {
    static char other[32];
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    if (code >= 0 && (size_t)code < sizeof names / sizeof names[0]) return names[code];
    snprintf(other, sizeof other, "CODE_%d", code);
    return other;
}

void ctl_copy_text(char *dst, size_t cap, const char *src, size_t n) {
    if (cap == 0) return;
    size_t i = 0;
    for (; i < n && i + 1 < cap && src[i]; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* ---- Frame checks (pure) ------------------------------------------------------------------ */

uint32_t ctl_check_header(const ctl_frame_header *h, uint32_t max_frame, char *why, size_t cap) {
    if (h->length > max_frame) {
        snprintf(why, cap, "frame of %u bytes exceeds MAX_FRAME_SIZE %u", (unsigned)h->length, (unsigned)max_frame);
        return CTL_E_FRAME_SIZE_ERROR;
    }
    if (h->type > CTL_F_MAX_TYPE) {
        snprintf(why, cap, "unknown frame type 0x%x", (unsigned)h->type);
        return CTL_E_PROTOCOL_ERROR;
    }
    unsigned allowed = (h->type == CTL_F_HEADERS || h->type == CTL_F_MESSAGE) ? CTL_FLAG_END_STREAM
                       : h->type == CTL_F_PING                                ? CTL_FLAG_ACK
                                                                              : 0u;
    if (h->flags & ~allowed) {
        snprintf(why, cap, "%s frame with undefined flags 0x%x", ctl_frame_type_name(h->type), (unsigned)h->flags);
        return CTL_E_PROTOCOL_ERROR;
    }
    int conn_level = h->type == CTL_F_SETTINGS || h->type == CTL_F_PING || h->type == CTL_F_GOAWAY;
    if (conn_level && h->stream != 0) {
        snprintf(why, cap, "%s frame must be on stream 0, not %u", ctl_frame_type_name(h->type), (unsigned)h->stream);
        return CTL_E_PROTOCOL_ERROR;
    }
    if (!conn_level && h->stream == 0) {
        snprintf(why, cap, "%s frame must not be on stream 0", ctl_frame_type_name(h->type));
        return CTL_E_PROTOCOL_ERROR;
    }
    int bad = (h->type == CTL_F_SETTINGS && h->length % 6 != 0) || (h->type == CTL_F_PING && h->length != 8) ||
              (h->type == CTL_F_WINDOW_UPDATE && h->length != 4) || (h->type == CTL_F_GOAWAY && h->length < 8) ||
              ((h->type == CTL_F_CANCEL || h->type == CTL_F_HALF_CLOSE) && h->length != 0);
    if (bad) {
        snprintf(why, cap, "%s payload of %u bytes has the wrong size", ctl_frame_type_name(h->type),
                 (unsigned)h->length);
        return CTL_E_PROTOCOL_ERROR;
    }
    return 0;
}

long ctl_next_frame(const uint8_t *in, size_t n, uint32_t max_frame, ctl_frame_header *h, uint32_t *code,
                    char *why, size_t cap) {
    if (n < CTL_HEADER_SIZE) return 0;
    h->length = get_u32(in);
    h->type = in[4];
    h->flags = in[5];
    h->stream = get_u32(in + 6);
    uint32_t c = ctl_check_header(h, max_frame, why, cap);
    if (c != 0) {
        *code = c;
        return -1;
    }
    if (n - CTL_HEADER_SIZE < h->length) return 0;
    return (long)(CTL_HEADER_SIZE + h->length);
}

/* ---- The connection ------------------------------------------------------------------------ */

typedef struct pending_msg {
    struct pending_msg *next;
    uint32_t len;
    uint8_t data[];
} pending_msg;

enum conn_state { CS_CONNECTING, CS_OPEN, CS_FAILED };

struct ctl_conn {
    int fd;
    enum conn_state state;
    char *api_key;
    struct addrinfo *addrs, *addr; /* the resolved list and the address being tried */
    int ready;                     /* the server's SETTINGS arrived */
    uint32_t peer_max_frame, peer_initial_window;
    uint32_t stream, highest_stream; /* the current call (0 = none) and the highest id used */
    int call_open, half_close_pending, half_closed;
    int credit_set;
    uint64_t send_credit;          /* MESSAGE frames we may still send on the call */
    uint32_t recv_window;          /* MESSAGE frames the server may still send */
    uint32_t consumed_unreturned;  /* consumed messages whose credit was not returned yet */
    pending_msg *blocked_head, *blocked_tail;
    size_t blocked_count;
    int going_away;
    ctl_buf out, in;
    int64_t last_rx_ms;
    uint64_t ping_counter;
    char error[256];
};

static int try_connect(ctl_conn *c, char *errbuf, size_t cap);

ctl_conn *ctl_conn_open(const char *host, int port, const char *api_key, char *errbuf, size_t cap) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
        snprintf(errbuf, cap, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    ctl_conn *c = calloc(1, sizeof *c);
    if (!c) {
        freeaddrinfo(list);
        snprintf(errbuf, cap, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->addrs = list;
    c->addr = list;
    c->api_key = strdup(api_key ? api_key : "");
    c->peer_max_frame = DEFAULT_MAX_FRAME_SIZE;
    c->peer_initial_window = DEFAULT_INITIAL_WINDOW;
    c->last_rx_ms = ctl_now_ms();
    /* Preface and SETTINGS: MAX_FRAME_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW. */
    uint8_t s[18];
    put_u16(s, 1);
    put_u32(s + 2, CTL_MAX_FRAME_SIZE);
    put_u16(s + 6, 2);
    put_u32(s + 8, 1024);
    put_u16(s + 12, 3);
    put_u32(s + 14, CTL_LOCAL_INITIAL_WINDOW);
    if (!c->api_key || ctl_buf_append(&c->out, PREFACE, sizeof PREFACE) != 0 ||
        ctl_buf_put_frame(&c->out, CTL_F_SETTINGS, 0, 0, s, sizeof s) != 0) {
        snprintf(errbuf, cap, "out of memory");
        ctl_conn_close(c);
        return NULL;
    }
    if (try_connect(c, errbuf, cap) != 0) {
        ctl_conn_close(c);
        return NULL;
    }
    return c;
}

/* Starts a non-blocking connect to c->addr or a later address. */
static int try_connect(ctl_conn *c, char *errbuf, size_t cap) {
    int err = 0;
    for (; c->addr; c->addr = c->addr->ai_next) {
        int fd = socket(c->addr->ai_family, c->addr->ai_socktype, c->addr->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int fl = fcntl(fd, F_GETFL, 0);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            err = errno;
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, c->addr->ai_addr, c->addr->ai_addrlen) == 0 || errno == EINPROGRESS || errno == EINTR) {
            c->fd = fd;
            c->state = CS_CONNECTING;
            return 0;
        }
        err = errno;
        close(fd);
    }
    snprintf(errbuf, cap, "connect: %s", strerror(err ? err : ECONNREFUSED));
    return -1;
}

static void conn_fail(ctl_conn *c, uint32_t goaway_code, const char *fmt, ...) {
    if (c->state == CS_FAILED) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    if (c->fd >= 0 && c->state == CS_OPEN && goaway_code != UINT32_MAX) {
        /* Best effort, one non-blocking send: tell the server why. */
        uint8_t g[8 + 200];
        size_t t = strlen(c->error);
        if (t > 200) t = 200;
        put_u32(g, 0);
        put_u32(g + 4, goaway_code);
        memcpy(g + 8, c->error, t);
        ctl_buf tmp = {0};
        if (ctl_buf_put_frame(&tmp, CTL_F_GOAWAY, 0, 0, g, (uint32_t)(8 + t)) == 0)
            (void)send(c->fd, tmp.data, tmp.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        ctl_buf_free(&tmp);
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = CS_FAILED;
}

int ctl_conn_start_call(ctl_conn *c, const char *method, uint64_t timeout_ms) {
    if (c->state == CS_FAILED || c->call_open || c->going_away || c->highest_stream >= MAX_STREAM_ID) return -1;
    Tote__V1__CallHeaders h = TOTE__V1__CALL_HEADERS__INIT;
    h.method = (char *)method;
    h.auth_token = c->api_key;
    h.timeout_micros = timeout_ms * 1000u;
    size_t n = tote__v1__call_headers__get_packed_size(&h);
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return -1;
    tote__v1__call_headers__pack(&h, p);
    uint32_t sid = c->highest_stream + 1;
    int rc = ctl_buf_put_frame(&c->out, CTL_F_HEADERS, 0, sid, p, (uint32_t)n);
    free(p);
    if (rc != 0) return -1;
    c->stream = c->highest_stream = sid;
    c->call_open = 1;
    c->half_close_pending = c->half_closed = 0;
    c->credit_set = 0;
    c->send_credit = 0;
    c->recv_window = CTL_LOCAL_INITIAL_WINDOW;
    c->consumed_unreturned = 0;
    return 0;
}

static void drop_blocked(ctl_conn *c) {
    while (c->blocked_head) {
        pending_msg *m = c->blocked_head;
        c->blocked_head = m->next;
        free(m);
    }
    c->blocked_tail = NULL;
    c->blocked_count = 0;
}

int ctl_conn_send(ctl_conn *c, const uint8_t *payload, size_t len) {
    if (c->state == CS_FAILED || !c->call_open || c->half_close_pending || c->half_closed) return -1;
    if (len > c->peer_max_frame) return -1;
    pending_msg *m = malloc(sizeof *m + (len ? len : 1));
    if (!m) return -1;
    m->next = NULL;
    m->len = (uint32_t)len;
    if (len) memcpy(m->data, payload, len);
    if (c->blocked_tail)
        c->blocked_tail->next = m;
    else
        c->blocked_head = m;
    c->blocked_tail = m;
    c->blocked_count++;
    return 0;
}

int ctl_conn_half_close(ctl_conn *c) {
    if (c->state == CS_FAILED || !c->call_open || c->half_closed) return -1;
    c->half_close_pending = 1;
    return 0;
}

int ctl_conn_ping(ctl_conn *c) {
    if (c->state != CS_OPEN) return -1;
    uint8_t p[8];
    uint64_t v = ++c->ping_counter;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return ctl_buf_put_frame(&c->out, CTL_F_PING, 0, 0, p, 8);
}

/* Moves blocked messages into the output while there is credit; then a pending HALF_CLOSE. */
static void release_blocked(ctl_conn *c) {
    if (!c->call_open || !c->ready) return;
    if (!c->credit_set) {
        c->send_credit = c->peer_initial_window;
        c->credit_set = 1;
    }
    while (c->blocked_head && c->send_credit > 0) {
        pending_msg *m = c->blocked_head;
        if (ctl_buf_put_frame(&c->out, CTL_F_MESSAGE, 0, c->stream, m->data, m->len) != 0) {
            conn_fail(c, CTL_E_INTERNAL_ERROR, "out of memory");
            return;
        }
        c->send_credit--;
        c->blocked_head = m->next;
        if (!c->blocked_head) c->blocked_tail = NULL;
        c->blocked_count--;
        free(m);
    }
    if (!c->blocked_head && c->half_close_pending && !c->half_closed) {
        if (ctl_buf_put_frame(&c->out, CTL_F_HALF_CLOSE, 0, c->stream, NULL, 0) != 0) {
            conn_fail(c, CTL_E_INTERNAL_ERROR, "out of memory");
            return;
        }
        c->half_closed = 1;
        c->half_close_pending = 0;
    }
}

int ctl_conn_fd(const ctl_conn *c) { return c->fd; }

short ctl_conn_events(const ctl_conn *c) {
    if (c->state == CS_CONNECTING) return POLLOUT;
    if (c->state == CS_FAILED) return 0;
    return (short)(POLLIN | (c->out.len ? POLLOUT : 0));
}

int ctl_conn_ready(const ctl_conn *c) { return c->ready && c->state == CS_OPEN; }
int ctl_conn_call_open(const ctl_conn *c) { return c->call_open; }
size_t ctl_conn_blocked_messages(const ctl_conn *c) { return c->blocked_count; }
int64_t ctl_conn_last_rx_ms(const ctl_conn *c) { return c->last_rx_ms; }
const char *ctl_conn_error(const ctl_conn *c) { return c->error; }

static void end_call(ctl_conn *c) {
    c->call_open = 0;
    drop_blocked(c);
}

/* Applies the server's SETTINGS; -1 on an invalid value. */
static int apply_settings(ctl_conn *c, const uint8_t *p, uint32_t len) {
    for (uint32_t off = 0; off + 6 <= len; off += 6) {
        uint16_t id = get_u16(p + off);
        uint32_t v = get_u32(p + off + 2);
        if (id == 1) {
            if (v < MIN_MAX_FRAME_SIZE) {
                conn_fail(c, CTL_E_PROTOCOL_ERROR, "SETTINGS MAX_FRAME_SIZE %u is below the minimum %u", (unsigned)v,
                          (unsigned)MIN_MAX_FRAME_SIZE);
                return -1;
            }
            c->peer_max_frame = v;
        } else if (id == 3) {
            if (v < 1) {
                conn_fail(c, CTL_E_PROTOCOL_ERROR, "SETTINGS INITIAL_WINDOW must be at least 1");
                return -1;
            }
            c->peer_initial_window = v;
        }
    }
    return 0;
}

/* Handles one complete frame. Returns -1 once the connection failed. */
static int handle_frame(ctl_conn *c, const ctl_frame_header *h, const uint8_t *p, const ctl_conn_handler *hd,
                        void *user) {
    if (!c->ready) {
        if (h->type == CTL_F_GOAWAY) {
            char text[200];
            ctl_copy_text(text, sizeof text, (const char *)p + 8, h->length - 8);
            if (hd->on_goaway) hd->on_goaway(user, get_u32(p + 4), text);
            conn_fail(c, UINT32_MAX, "server refused the connection: GOAWAY %s: %s", ctl_goaway_code_name(get_u32(p + 4)),
                      text);
            return -1;
        }
        if (h->type != CTL_F_SETTINGS) {
            conn_fail(c, CTL_E_PROTOCOL_ERROR, "expected SETTINGS from the server first, got %s",
                      ctl_frame_type_name(h->type));
            return -1;
        }
        if (apply_settings(c, p, h->length) != 0) return -1;
        c->ready = 1;
        if (hd->on_ready) hd->on_ready(user);
        release_blocked(c);
        return c->state == CS_FAILED ? -1 : 0;
    }
    switch (h->type) {
    case CTL_F_SETTINGS:
        conn_fail(c, CTL_E_PROTOCOL_ERROR, "SETTINGS may only be sent once");
        return -1;
    case CTL_F_PING:
        if (!(h->flags & CTL_FLAG_ACK) && ctl_buf_put_frame(&c->out, CTL_F_PING, CTL_FLAG_ACK, 0, p, 8) != 0) {
            conn_fail(c, CTL_E_INTERNAL_ERROR, "out of memory");
            return -1;
        }
        return 0;
    case CTL_F_GOAWAY: {
        char text[200];
        uint32_t last = get_u32(p), code = get_u32(p + 4);
        ctl_copy_text(text, sizeof text, (const char *)p + 8, h->length - 8);
        if (hd->on_goaway) hd->on_goaway(user, code, text);
        if (code != CTL_E_NO_ERROR) {
            conn_fail(c, UINT32_MAX, "connection closed by the server: GOAWAY %s: %s", ctl_goaway_code_name(code), text);
            return -1;
        }
        c->going_away = 1;
        if (c->call_open && c->stream > last) {
            end_call(c);
            if (hd->on_status) hd->on_status(user, 14, "the server is shutting down and did not take the call");
        }
        return 0;
    }
    case CTL_F_MESSAGE:
    case CTL_F_STATUS:
    case CTL_F_WINDOW_UPDATE:
        if (h->stream > c->highest_stream) {
            conn_fail(c, CTL_E_PROTOCOL_ERROR, "%s on stream %u, which was never opened", ctl_frame_type_name(h->type),
                      (unsigned)h->stream);
            return -1;
        }
        if (h->type == CTL_F_WINDOW_UPDATE && get_u32(p) == 0) {
            conn_fail(c, CTL_E_PROTOCOL_ERROR, "WINDOW_UPDATE increment must be positive");
            return -1;
        }
        if (h->stream != c->stream || !c->call_open) return 0; /* an ended call's leftovers */
        if (h->type == CTL_F_WINDOW_UPDATE) {
            if (!c->credit_set) {
                c->send_credit = c->peer_initial_window;
                c->credit_set = 1;
            }
            c->send_credit += get_u32(p);
            if (c->send_credit > UINT32_MAX) {
                conn_fail(c, CTL_E_FLOW_CONTROL_ERROR, "WINDOW_UPDATE overflows the credit of stream %u",
                          (unsigned)c->stream);
                return -1;
            }
            release_blocked(c);
            return c->state == CS_FAILED ? -1 : 0;
        }
        if (h->type == CTL_F_MESSAGE) {
            if (c->recv_window == 0) {
                conn_fail(c, CTL_E_FLOW_CONTROL_ERROR, "MESSAGE on stream %u without credit (window %u)",
                          (unsigned)c->stream, CTL_LOCAL_INITIAL_WINDOW);
                return -1;
            }
            c->recv_window--;
            if (hd->on_message) hd->on_message(user, p, h->length);
            if (c->state == CS_FAILED) return -1;
            if (!c->call_open) return 0; /* the handler may have ended things */
            /* Return credit as messages are consumed, in batches of half the window. */
            if (++c->consumed_unreturned >= CTL_LOCAL_INITIAL_WINDOW / 2) {
                uint8_t inc[4];
                put_u32(inc, c->consumed_unreturned);
                if (ctl_buf_put_frame(&c->out, CTL_F_WINDOW_UPDATE, 0, c->stream, inc, 4) != 0) {
                    conn_fail(c, CTL_E_INTERNAL_ERROR, "out of memory");
                    return -1;
                }
                c->recv_window += c->consumed_unreturned;
                c->consumed_unreturned = 0;
            }
            return 0;
        }
        /* STATUS */
        {
            int code = 0;
            char msg[256] = "";
            if (h->length > 0) {
                Tote__V1__CallStatus *cs = tote__v1__call_status__unpack(NULL, h->length, p);
                if (!cs) {
                    code = 13;
                    snprintf(msg, sizeof msg, "server sent an undecodable STATUS (%u bytes)", (unsigned)h->length);
                } else {
                    code = (int)cs->code;
                    const char *t = cs->message ? cs->message : "";
                    ctl_copy_text(msg, sizeof msg, t, strlen(t));
                    tote__v1__call_status__free_unpacked(cs, NULL);
                }
            }
            end_call(c);
            if (hd->on_status) hd->on_status(user, code, msg);
            return c->state == CS_FAILED ? -1 : 0;
        }
    default: /* HEADERS, CANCEL, HALF_CLOSE */
        conn_fail(c, CTL_E_PROTOCOL_ERROR, "%s frames are sent only by the client", ctl_frame_type_name(h->type));
        return -1;
    }
}

static int flush_out(ctl_conn *c) {
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            ctl_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        conn_fail(c, UINT32_MAX, "connection error while sending: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int ctl_conn_io(ctl_conn *c, short revents, const ctl_conn_handler *hd, void *user) {
    if (c->state == CS_FAILED) return -1;
    if (c->state == CS_CONNECTING) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return 0;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr != 0) {
            close(c->fd);
            c->fd = -1;
            c->addr = c->addr ? c->addr->ai_next : NULL;
            char err[200];
            if (!c->addr || try_connect(c, err, sizeof err) != 0) {
                c->state = CS_FAILED;
                snprintf(c->error, sizeof c->error, "connect: %s", strerror(soerr));
                return -1;
            }
            return 0;
        }
        c->state = CS_OPEN;
        c->last_rx_ms = ctl_now_ms();
    }
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        for (;;) {
            uint8_t tmp[16384];
            ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
            if (n > 0) {
                c->last_rx_ms = ctl_now_ms();
                if (ctl_buf_append(&c->in, tmp, (size_t)n) != 0) {
                    conn_fail(c, CTL_E_INTERNAL_ERROR, "out of memory");
                    return -1;
                }
                /* Dispatch every complete frame. */
                size_t off = 0;
                for (;;) {
                    ctl_frame_header h;
                    uint32_t code = 0;
                    char why[200];
                    long used = ctl_next_frame(c->in.data + off, c->in.len - off, CTL_MAX_FRAME_SIZE, &h, &code, why,
                                               sizeof why);
                    if (used < 0) {
                        conn_fail(c, code, "protocol error from the server: %s", why);
                        return -1;
                    }
                    if (used == 0) break;
                    if (handle_frame(c, &h, c->in.data + off + CTL_HEADER_SIZE, hd, user) != 0) return -1;
                    off += (size_t)used;
                }
                ctl_buf_consume(&c->in, off);
                if ((size_t)n < sizeof tmp) break;
                continue;
            }
            if (n == 0) {
                conn_fail(c, UINT32_MAX, "connection closed by the server%s",
                          c->in.len ? " in the middle of a frame" : "");
                return -1;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_fail(c, UINT32_MAX, "connection error: %s", strerror(errno));
            return -1;
        }
    }
    release_blocked(c);
    if (c->state == CS_FAILED) return -1;
    return flush_out(c);
}

void ctl_conn_abort(ctl_conn *c, const char *reason) {
    if (c) conn_fail(c, CTL_E_NO_ERROR, "%s", reason ? reason : "aborted");
}

void ctl_conn_close(ctl_conn *c) {
    if (!c) return;
    if (c->fd >= 0 && c->state == CS_OPEN) {
        uint8_t g[8];
        put_u32(g, 0);
        put_u32(g + 4, CTL_E_NO_ERROR);
        (void)flush_out(c);
        if (c->fd >= 0 && ctl_buf_put_frame(&c->out, CTL_F_GOAWAY, 0, 0, g, 8) == 0)
            (void)send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (c->fd >= 0) close(c->fd);
    drop_blocked(c);
    ctl_buf_free(&c->out);
    ctl_buf_free(&c->in);
    if (c->addrs) freeaddrinfo(c->addrs);
    free(c->api_key);
    free(c);
}
