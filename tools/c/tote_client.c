/*
 * tote_client.c: blocking client for the Tote wire protocol v1. See tote_client.h and
 * docs/PROTOCOL.md (the frame layout, the frame rules checked below, and the call lifecycle).
 *
 * Every byte from the server is checked before use: frame lengths against our MAX_FRAME_SIZE
 * before anything is allocated, types, flags, stream ids and fixed payload sizes as the Swift
 * FrameDecoder checks them, and protobuf payloads through protobuf-c's bounds-checked unpack.
 * A violation closes the connection with GOAWAY and fails the call with INTERNAL.
 */
#define _POSIX_C_SOURCE 200809L

#include "tote_client.h"

#include "tote/v1/rpc.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

/* ---- Protocol constants (docs/PROTOCOL.md) ---------------------------------------------- */

enum {
    F_SETTINGS = 0x0,
    F_HEADERS = 0x1,
    F_MESSAGE = 0x2,
    F_STATUS = 0x3,
    F_CANCEL = 0x4,
    F_WINDOW_UPDATE = 0x5,
    F_PING = 0x6,
    F_GOAWAY = 0x7,
    F_HALF_CLOSE = 0x8,
    F_MAX_TYPE = 0x8
};

#define FLAG_END_STREAM 0x1u
#define FLAG_ACK 0x1u
#define HEADER_SIZE 10u

enum {
    E_NO_ERROR = 0,
    E_PROTOCOL_ERROR = 1,
    E_FRAME_SIZE_ERROR = 2,
    E_FLOW_CONTROL_ERROR = 3,
    E_TIMEOUT = 4,
    E_CONNECTION_LIMIT = 5,
    E_INTERNAL_ERROR = 6
};

enum { S_MAX_FRAME_SIZE = 1, S_MAX_CONCURRENT_STREAMS = 2, S_INITIAL_WINDOW = 3 };

#define DEFAULT_MAX_FRAME_SIZE (4u * 1024u * 1024u)
#define MIN_MAX_FRAME_SIZE (16u * 1024u)
#define DEFAULT_MAX_CONCURRENT_STREAMS 1024u
#define DEFAULT_INITIAL_WINDOW 64u
/* What we announce. The window bounds how many messages the server may send per stream. */
#define LOCAL_INITIAL_WINDOW 64u
/* Client stream ids stay below 2^31 - 1, like the Swift client. */
#define MAX_STREAM_ID 0x7ffffffeu
/* How long best-effort frames (GOAWAY before closing, CANCEL) may take to write. */
#define BEST_EFFORT_MS 200

static const uint8_t PREFACE[8] = {'T', 'O', 'T', 'E', '/', '1', '\r', '\n'};

/* Sentinel for conn_fail: do not send a GOAWAY (the peer already closed or sent one). */
#define NO_GOAWAY UINT32_MAX

struct tote_conn {
    int fd; /* -1 once closed */
    char *api_key;
    uint32_t next_stream_id;
    uint32_t peer_max_frame_size;
    uint32_t peer_max_concurrent_streams;
    uint32_t peer_initial_window;
    int failed;     /* transport failure or protocol error: no more I/O */
    int going_away; /* the server sent GOAWAY(NO_ERROR): no new calls */
    uint32_t goaway_last_stream;
    size_t rpos, rlen; /* unread bytes: rbuf[rpos, rpos + rlen) */
    uint8_t rbuf[64 * 1024];
};

typedef struct {
    uint8_t type;
    uint8_t flags;
    uint32_t stream;
    uint32_t length;
    uint8_t *payload; /* malloc'ed, length bytes (at least 1 byte allocated); owned by the frame */
} frame_t;

enum io_result { IO_OK = 0, IO_TIMEOUT, IO_EOF, IO_ERROR };

/* ---- Small helpers ------------------------------------------------------------------------ */

static const char *const CODE_NAMES[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *tote_status_code_name(int code) {
    static _Thread_local char other[32];
    if (code >= 0 && (size_t)code < sizeof CODE_NAMES / sizeof CODE_NAMES[0]) return CODE_NAMES[code];
    snprintf(other, sizeof other, "CODE_%d", code);
    return other;
}

static const char *frame_type_name(unsigned type) {
    static const char *const names[] = {"SETTINGS", "HEADERS", "MESSAGE", "STATUS", "CANCEL",
                                        "WINDOW_UPDATE", "PING", "GOAWAY", "HALF_CLOSE"};
    return type <= F_MAX_TYPE ? names[type] : "UNKNOWN";
}

static const char *goaway_code_name(uint32_t code) {
    static _Thread_local char other[32];
    static const char *const names[] = {"NO_ERROR", "PROTOCOL_ERROR", "FRAME_SIZE_ERROR",
                                        "FLOW_CONTROL_ERROR", "TIMEOUT", "CONNECTION_LIMIT",
                                        "INTERNAL_ERROR"};
    if (code < sizeof names / sizeof names[0]) return names[code];
    snprintf(other, sizeof other, "UNKNOWN(%u)", (unsigned)code);
    return other;
}

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

static void put_header(uint8_t *p, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream) {
    put_u32(p, length);
    p[4] = type;
    p[5] = flags;
    put_u32(p + 6, stream);
}

/* Copies n bytes of untrusted text into dst (cap bytes, NUL-terminated), replacing control
 * characters so that a hostile server cannot write terminal escapes through our messages. */
static void copy_text(char *dst, size_t cap, const char *src, size_t n) {
    if (cap == 0) return;
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* Formats into a TOTE_ERRBUF_SIZE buffer (truncating). */
static void errorf(char *errbuf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, TOTE_ERRBUF_SIZE, fmt, ap);
    va_end(ap);
}

static void set_status(tote_status *st, int code, const char *fmt, ...) {
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof st->message, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute monotonic deadline in ms, or -1 for none. */
static int64_t deadline_after(int timeout_ms) { return timeout_ms > 0 ? now_ms() + timeout_ms : -1; }

static int poll_timeout(int64_t deadline) {
    if (deadline < 0) return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Waits until fd is ready for `events`; IO_OK (also on POLLERR/POLLHUP: the next call reports
 * the error), IO_TIMEOUT or IO_ERROR. */
static enum io_result wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, poll_timeout(deadline));
        if (n > 0) return IO_OK;
        if (n == 0) return IO_TIMEOUT;
        if (errno != EINTR) return IO_ERROR;
    }
}

static enum io_result write_all(int fd, const uint8_t *buf, size_t len, int64_t deadline) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            enum io_result r = wait_fd(fd, POLLOUT, deadline);
            if (r != IO_OK) return r;
            continue;
        }
        return IO_ERROR;
    }
    return IO_OK;
}

/* Reads whatever is available into rbuf (at least one byte) or reports why not. */
static enum io_result fill(tote_conn *c, int64_t deadline) {
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen);
        c->rpos = 0;
    }
    if (c->rlen >= sizeof c->rbuf) return IO_OK; /* cannot happen: callers need < 10 bytes */
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            return IO_OK;
        }
        if (n == 0) return IO_EOF;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            enum io_result r = wait_fd(c->fd, POLLIN, deadline);
            if (r != IO_OK) return r;
            continue;
        }
        return IO_ERROR;
    }
}

/* Writes one frame (header and payload in one send). */
static enum io_result send_frame(tote_conn *c, uint8_t type, uint8_t flags, uint32_t stream,
                                 const uint8_t *payload, uint32_t length, int64_t deadline) {
    uint8_t small[HEADER_SIZE + 256];
    uint8_t *buf = small;
    if (length > sizeof small - HEADER_SIZE) {
        buf = malloc(HEADER_SIZE + (size_t)length);
        if (!buf) return IO_ERROR;
    }
    put_header(buf, length, type, flags, stream);
    if (length) memcpy(buf + HEADER_SIZE, payload, length);
    enum io_result r = write_all(c->fd, buf, HEADER_SIZE + (size_t)length, deadline);
    if (buf != small) free(buf);
    return r;
}

static void close_socket(tote_conn *c) {
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->rpos = c->rlen = 0;
}

/* The connection is unusable from now on. With a code other than NO_GOAWAY, first tells the
 * server why with a GOAWAY (best effort). */
static void conn_fail(tote_conn *c, uint32_t goaway_code, const char *why) {
    if (c->fd >= 0 && !c->failed && goaway_code != NO_GOAWAY) {
        uint8_t payload[8 + 200];
        size_t text = why ? strlen(why) : 0;
        if (text > 200) text = 200;
        put_u32(payload, 0); /* last stream id: the server opens no streams, so 0 */
        put_u32(payload + 4, goaway_code);
        if (text) memcpy(payload + 8, why, text);
        (void)send_frame(c, F_GOAWAY, 0, 0, payload, (uint32_t)(8 + text), now_ms() + BEST_EFFORT_MS);
    }
    c->failed = 1;
    close_socket(c);
}

/* A protocol violation by the server: GOAWAY with `code`, close, and an INTERNAL status. */
static void protocol_violation(tote_conn *c, tote_status *st, uint32_t code, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    conn_fail(c, code, why);
    set_status(st, TOTE_INTERNAL, "protocol error from the server (%s): %s", goaway_code_name(code), why);
}

static void io_failure(tote_conn *c, tote_status *st, enum io_result r, const char *when) {
    int err = errno;
    int partial = c->rlen > 0;
    conn_fail(c, NO_GOAWAY, NULL);
    if (r == IO_EOF)
        set_status(st, TOTE_UNAVAILABLE, "connection closed by the server%s%s",
                   partial ? " in the middle of a frame" : "", when);
    else
        set_status(st, TOTE_UNAVAILABLE, "connection error%s: %s", when, strerror(err));
}

/* ---- Frames in ---------------------------------------------------------------------------- */

/* The checks the Swift FrameDecoder makes on a header, from the client's side. Returns 0 or a
 * GOAWAY code with `why` filled. */
static uint32_t check_header(uint8_t type, uint8_t flags, uint32_t stream, uint32_t length,
                             char *why, size_t cap) {
    if (length > TOTE_CLIENT_MAX_FRAME_SIZE) {
        snprintf(why, cap, "frame of %u bytes exceeds MAX_FRAME_SIZE %u", (unsigned)length,
                 (unsigned)TOTE_CLIENT_MAX_FRAME_SIZE);
        return E_FRAME_SIZE_ERROR;
    }
    if (type > F_MAX_TYPE) {
        snprintf(why, cap, "unknown frame type 0x%x", (unsigned)type);
        return E_PROTOCOL_ERROR;
    }
    unsigned allowed = (type == F_HEADERS || type == F_MESSAGE) ? FLAG_END_STREAM
                       : type == F_PING                         ? FLAG_ACK
                                                                : 0u;
    if (flags & ~allowed) {
        snprintf(why, cap, "%s frame with undefined flags 0x%x", frame_type_name(type), (unsigned)flags);
        return E_PROTOCOL_ERROR;
    }
    int connection_level = type == F_SETTINGS || type == F_PING || type == F_GOAWAY;
    if (connection_level && stream != 0) {
        snprintf(why, cap, "%s frame must be on stream 0, not %u", frame_type_name(type), (unsigned)stream);
        return E_PROTOCOL_ERROR;
    }
    if (!connection_level && stream == 0) {
        snprintf(why, cap, "%s frame must not be on stream 0", frame_type_name(type));
        return E_PROTOCOL_ERROR;
    }
    int bad_size = (type == F_SETTINGS && length % 6 != 0) || (type == F_PING && length != 8) ||
                   (type == F_WINDOW_UPDATE && length != 4) || (type == F_GOAWAY && length < 8) ||
                   ((type == F_CANCEL || type == F_HALF_CLOSE) && length != 0);
    if (bad_size) {
        snprintf(why, cap, "%s payload of %u bytes has the wrong size", frame_type_name(type), (unsigned)length);
        return E_PROTOCOL_ERROR;
    }
    return 0;
}

/* Reads one whole frame. Returns 0, or -1 with *timed_out set (the deadline passed; the
 * connection is still consistent unless c->failed) or with `st` set (connection failed). */
static int read_frame(tote_conn *c, int64_t deadline, frame_t *f, tote_status *st, int *timed_out) {
    *timed_out = 0;
    memset(f, 0, sizeof *f);
    if (c->fd < 0) {
        set_status(st, TOTE_UNAVAILABLE, "the connection is closed");
        return -1;
    }
    while (c->rlen < HEADER_SIZE) {
        enum io_result r = fill(c, deadline);
        if (r == IO_TIMEOUT) { /* header bytes stay buffered: still consistent */
            *timed_out = 1;
            return -1;
        }
        if (r != IO_OK) {
            io_failure(c, st, r, "");
            return -1;
        }
    }
    const uint8_t *h = c->rbuf + c->rpos;
    uint32_t length = get_u32(h);
    uint8_t type = h[4], flags = h[5];
    uint32_t stream = get_u32(h + 6);
    char why[200];
    uint32_t code = check_header(type, flags, stream, length, why, sizeof why);
    if (code != 0) {
        protocol_violation(c, st, code, "%s", why);
        return -1;
    }
    c->rpos += HEADER_SIZE;
    c->rlen -= HEADER_SIZE;

    uint8_t *payload = malloc(length ? length : 1);
    if (!payload) {
        conn_fail(c, E_INTERNAL_ERROR, "out of memory");
        set_status(st, TOTE_RESOURCE_EXHAUSTED, "out of memory for a %u-byte frame", (unsigned)length);
        return -1;
    }
    size_t got = 0;
    while (got < length) {
        if (c->rlen > 0) {
            size_t take = c->rlen < length - got ? c->rlen : length - got;
            memcpy(payload + got, c->rbuf + c->rpos, take);
            c->rpos += take;
            c->rlen -= take;
            got += take;
            continue;
        }
        ssize_t n = recv(c->fd, payload + got, length - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        enum io_result r = IO_ERROR;
        if (n == 0) {
            r = IO_EOF;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            r = wait_fd(c->fd, POLLIN, deadline);
            if (r == IO_OK) continue;
        }
        int saved_errno = errno;
        free(payload);
        errno = saved_errno;
        if (r == IO_TIMEOUT) { /* half a frame read: the byte stream is lost */
            conn_fail(c, NO_GOAWAY, NULL);
            *timed_out = 1;
            return -1;
        }
        c->rlen = 1; /* makes io_failure say "in the middle of a frame" */
        io_failure(c, st, r, "");
        return -1;
    }
    if (c->rlen == 0) c->rpos = 0;
    f->type = type;
    f->flags = flags;
    f->stream = stream;
    f->length = length;
    f->payload = payload;
    return 0;
}

static void free_frame(frame_t *f) {
    free(f->payload);
    f->payload = NULL;
}

/* Parses a SETTINGS payload over the defaults; -1 with `why` on an invalid value. */
static int apply_settings(tote_conn *c, const frame_t *f, char *why, size_t cap) {
    c->peer_max_frame_size = DEFAULT_MAX_FRAME_SIZE;
    c->peer_max_concurrent_streams = DEFAULT_MAX_CONCURRENT_STREAMS;
    c->peer_initial_window = DEFAULT_INITIAL_WINDOW;
    for (uint32_t off = 0; off + 6 <= f->length; off += 6) {
        uint16_t id = get_u16(f->payload + off);
        uint32_t value = get_u32(f->payload + off + 2);
        switch (id) {
        case S_MAX_FRAME_SIZE:
            if (value < MIN_MAX_FRAME_SIZE) {
                snprintf(why, cap, "SETTINGS MAX_FRAME_SIZE %u is below the minimum %u", (unsigned)value,
                         (unsigned)MIN_MAX_FRAME_SIZE);
                return -1;
            }
            c->peer_max_frame_size = value;
            break;
        case S_MAX_CONCURRENT_STREAMS:
            c->peer_max_concurrent_streams = value;
            break;
        case S_INITIAL_WINDOW:
            if (value < 1) {
                snprintf(why, cap, "SETTINGS INITIAL_WINDOW must be at least 1");
                return -1;
            }
            c->peer_initial_window = value;
            break;
        default: /* unknown settings are ignored */
            break;
        }
    }
    return 0;
}

typedef struct {
    uint32_t last_stream;
    uint32_t code;
    char text[256];
} goaway_t;

static void parse_goaway(const frame_t *f, goaway_t *g) {
    /* check_header guaranteed at least 8 bytes */
    g->last_stream = get_u32(f->payload);
    g->code = get_u32(f->payload + 4);
    copy_text(g->text, sizeof g->text, (const char *)f->payload + 8, f->length - 8);
}

/* After a failed write: the server may have said why in a GOAWAY before closing. Reads what
 * is already buffered (briefly) and returns 1 with *g filled if a GOAWAY is found. */
static int find_goaway(tote_conn *c, goaway_t *g) {
    int64_t deadline = now_ms() + BEST_EFFORT_MS;
    for (int i = 0; i < 64 && c->fd >= 0; i++) {
        frame_t f;
        tote_status ignored;
        int timed_out;
        if (read_frame(c, deadline, &f, &ignored, &timed_out) != 0) return 0;
        int found = f.type == F_GOAWAY;
        if (found) parse_goaway(&f, g);
        free_frame(&f);
        if (found) return 1;
    }
    return 0;
}

/* ---- Connect ------------------------------------------------------------------------------ */

static int open_socket(const char *host, int port, int64_t deadline, char *errbuf) {
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
        errorf(errbuf, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    const char *failure = "no usable address";
    int err = 0;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            failure = NULL;
            continue;
        }
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            err = errno;
            failure = NULL;
            close(fd);
            fd = -1;
            continue;
        }
#ifdef SO_NOSIGPIPE
        int one_nosig = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one_nosig, sizeof one_nosig);
#endif
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS || errno == EINTR) {
            enum io_result r = wait_fd(fd, POLLOUT, deadline);
            if (r == IO_OK) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) break;
                err = soerr ? soerr : errno;
                failure = NULL;
            } else if (r == IO_TIMEOUT) {
                failure = "timed out";
            } else {
                err = errno;
                failure = NULL;
            }
        } else {
            err = errno;
            failure = NULL;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0) {
        errorf(errbuf, "connect to %s:%d: %s", host, port, failure ? failure : strerror(err));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int tote_connect(const char *host, int port, const char *api_key, int timeout_ms, tote_conn **out,
                 char *errbuf) {
    char scratch[TOTE_ERRBUF_SIZE];
    if (!errbuf) errbuf = scratch;
    errbuf[0] = '\0';
    if (!out) {
        errorf(errbuf, "tote_connect: conn must not be NULL");
        return -1;
    }
    *out = NULL;
    if (!host || !*host) {
        errorf(errbuf, "tote_connect: no host");
        return -1;
    }
    if (port < 1 || port > 65535) {
        errorf(errbuf, "tote_connect: port %d is out of range", port);
        return -1;
    }
    int64_t deadline = deadline_after(timeout_ms);

    tote_conn *c = calloc(1, sizeof *c);
    if (!c) {
        errorf(errbuf, "out of memory");
        return -1;
    }
    c->fd = -1;
    c->next_stream_id = 1;
    c->api_key = strdup(api_key ? api_key : "");
    if (!c->api_key) {
        free(c);
        errorf(errbuf, "out of memory");
        return -1;
    }
    c->fd = open_socket(host, port, deadline, errbuf);
    if (c->fd < 0) goto fail;

    /* Preface, then our SETTINGS: MAX_FRAME_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW. */
    uint8_t hello[8 + HEADER_SIZE + 18];
    memcpy(hello, PREFACE, 8);
    put_header(hello + 8, 18, F_SETTINGS, 0, 0);
    uint8_t *s = hello + 8 + HEADER_SIZE;
    put_u16(s, S_MAX_FRAME_SIZE);
    put_u32(s + 2, TOTE_CLIENT_MAX_FRAME_SIZE);
    put_u16(s + 6, S_MAX_CONCURRENT_STREAMS);
    put_u32(s + 8, DEFAULT_MAX_CONCURRENT_STREAMS);
    put_u16(s + 12, S_INITIAL_WINDOW);
    put_u32(s + 14, LOCAL_INITIAL_WINDOW);
    enum io_result w = write_all(c->fd, hello, sizeof hello, deadline);
    if (w != IO_OK) {
        int err = errno;
        goaway_t g;
        if (w != IO_TIMEOUT && find_goaway(c, &g))
            errorf(errbuf, "server refused the connection: GOAWAY %s: %s",
                     goaway_code_name(g.code), g.text);
        else
            errorf(errbuf, "sending the preface to %s:%d: %s", host, port,
                     w == IO_TIMEOUT ? "timed out" : strerror(err));
        goto fail;
    }

    /* The server's first frame is its SETTINGS, or a GOAWAY refusing us. */
    frame_t f;
    tote_status st;
    int timed_out;
    if (read_frame(c, deadline, &f, &st, &timed_out) != 0) {
        if (timed_out)
            errorf(errbuf, "timed out waiting for the server's SETTINGS");
        else
            errorf(errbuf, "handshake with %s:%d failed: %s", host, port, st.message);
        goto fail;
    }
    if (f.type == F_GOAWAY) {
        goaway_t g;
        parse_goaway(&f, &g);
        free_frame(&f);
        errorf(errbuf, "server refused the connection: GOAWAY %s: %s",
                 goaway_code_name(g.code), g.text);
        conn_fail(c, NO_GOAWAY, NULL);
        goto fail;
    }
    if (f.type != F_SETTINGS) {
        char why[96];
        snprintf(why, sizeof why, "expected SETTINGS from the server first, got %s", frame_type_name(f.type));
        free_frame(&f);
        conn_fail(c, E_PROTOCOL_ERROR, why);
        errorf(errbuf, "handshake with %s:%d failed: protocol error: %s", host, port, why);
        goto fail;
    }
    char why[128];
    int bad = apply_settings(c, &f, why, sizeof why);
    free_frame(&f);
    if (bad) {
        conn_fail(c, E_PROTOCOL_ERROR, why);
        errorf(errbuf, "handshake with %s:%d failed: protocol error: %s", host, port, why);
        goto fail;
    }
    *out = c;
    return 0;

fail:
    close_socket(c);
    free(c->api_key);
    free(c);
    return -1;
}

/* ---- Calls -------------------------------------------------------------------------------- */

int tote_conn_usable(const tote_conn *c) { return c && !c->failed && !c->going_away && c->fd >= 0; }

int tote_conn_failed(const tote_conn *c) { return !c || c->failed; }

int tote_unary(tote_conn *c, const char *method, const uint8_t *request, size_t len, int timeout_ms,
               uint8_t **response, size_t *response_len, tote_status *status) {
    return tote_unary_idempotent(c, method, NULL, request, len, timeout_ms, response, response_len, status);
}

int tote_unary_idempotent(tote_conn *c, const char *method, const char *idempotency_key, const uint8_t *request,
                          size_t len, int timeout_ms, uint8_t **response, size_t *response_len, tote_status *status) {
    tote_status scratch;
    tote_status *st = status ? status : &scratch;
    set_status(st, TOTE_OK, "%s", "");
    if (response) *response = NULL;
    if (response_len) *response_len = 0;

    if (!c || !method || (!request && len > 0)) {
        set_status(st, TOTE_INVALID_ARGUMENT, "tote_unary: invalid arguments");
        return st->code;
    }
    if (c->failed || c->fd < 0) {
        set_status(st, TOTE_UNAVAILABLE, "the connection is closed");
        return st->code;
    }
    if (c->going_away) {
        set_status(st, TOTE_UNAVAILABLE, "the server is going away (GOAWAY); retry on a new connection");
        return st->code;
    }
    if (c->next_stream_id > MAX_STREAM_ID) {
        set_status(st, TOTE_UNAVAILABLE, "stream ids on this connection are exhausted");
        return st->code;
    }
    if (len > c->peer_max_frame_size) {
        set_status(st, TOTE_RESOURCE_EXHAUSTED, "request of %zu bytes exceeds the server's MAX_FRAME_SIZE of %u bytes",
                   len, (unsigned)c->peer_max_frame_size);
        return st->code;
    }

    Tote__V1__CallHeaders headers = TOTE__V1__CALL_HEADERS__INIT;
    headers.method = (char *)method;
    headers.auth_token = c->api_key;
    if (idempotency_key) headers.idempotency_key = (char *)idempotency_key;
    headers.timeout_micros = timeout_ms > 0 ? (uint64_t)timeout_ms * 1000u : 0;
    size_t hlen = tote__v1__call_headers__get_packed_size(&headers);
    if (hlen > c->peer_max_frame_size) {
        set_status(st, TOTE_RESOURCE_EXHAUSTED, "call headers of %zu bytes exceed the server's MAX_FRAME_SIZE", hlen);
        return st->code;
    }
    size_t total = 2 * HEADER_SIZE + hlen + len;
    uint8_t *out = malloc(total);
    if (!out) {
        set_status(st, TOTE_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte request", len);
        return st->code;
    }
    int64_t deadline = deadline_after(timeout_ms);
    uint32_t sid = c->next_stream_id++;

    /* HEADERS, then the request as one MESSAGE with END_STREAM, in one write. */
    put_header(out, (uint32_t)hlen, F_HEADERS, 0, sid);
    size_t packed = tote__v1__call_headers__pack(&headers, out + HEADER_SIZE);
    if (packed != hlen) {
        free(out);
        set_status(st, TOTE_INTERNAL, "could not encode the call headers");
        return st->code;
    }
    put_header(out + HEADER_SIZE + hlen, (uint32_t)len, F_MESSAGE, FLAG_END_STREAM, sid);
    if (len) memcpy(out + 2 * HEADER_SIZE + hlen, request, len);
    enum io_result w = write_all(c->fd, out, total, deadline);
    int werr = errno;
    free(out);
    if (w == IO_TIMEOUT) {
        conn_fail(c, NO_GOAWAY, NULL); /* a partial frame went out: the stream of bytes is lost */
        set_status(st, TOTE_DEADLINE_EXCEEDED, "deadline of %d ms exceeded while sending the request", timeout_ms);
        return st->code;
    }
    if (w != IO_OK) {
        goaway_t g;
        if (find_goaway(c, &g))
            set_status(st, TOTE_UNAVAILABLE, "connection closed by the server: GOAWAY %s: %s",
                       goaway_code_name(g.code), g.text);
        else
            set_status(st, TOTE_UNAVAILABLE, "connection error while sending the request: %s", strerror(werr));
        conn_fail(c, NO_GOAWAY, NULL);
        return st->code;
    }

    uint8_t *msg = NULL;
    size_t msg_len = 0;
    uint32_t messages = 0;
    for (;;) {
        frame_t f;
        int timed_out;
        if (read_frame(c, deadline, &f, st, &timed_out) != 0) {
            if (timed_out) {
                if (!c->failed) (void)send_frame(c, F_CANCEL, 0, sid, NULL, 0, now_ms() + BEST_EFFORT_MS);
                set_status(st, TOTE_DEADLINE_EXCEEDED, "deadline of %d ms exceeded", timeout_ms);
            }
            break;
        }
        if (f.type == F_MESSAGE || f.type == F_STATUS || f.type == F_WINDOW_UPDATE) {
            if (f.stream > sid) {
                protocol_violation(c, st, E_PROTOCOL_ERROR, "%s on stream %u, which was never opened",
                                   frame_type_name(f.type), (unsigned)f.stream);
                free_frame(&f);
                break;
            }
            if (f.type == F_WINDOW_UPDATE && get_u32(f.payload) == 0) {
                protocol_violation(c, st, E_PROTOCOL_ERROR, "WINDOW_UPDATE increment must be positive");
                free_frame(&f);
                break;
            }
            if (f.stream < sid || f.type == F_WINDOW_UPDATE) { /* an earlier call's leftovers, or credit */
                free_frame(&f);
                continue;
            }
        }
        switch (f.type) {
        case F_MESSAGE:
            if (++messages > LOCAL_INITIAL_WINDOW) {
                protocol_violation(c, st, E_FLOW_CONTROL_ERROR, "MESSAGE on stream %u without credit (window %u)",
                                   (unsigned)sid, LOCAL_INITIAL_WINDOW);
                free_frame(&f);
                goto done;
            }
            if (messages == 1) {
                msg = f.payload; /* keep it */
                msg_len = f.length;
                f.payload = NULL;
            }
            free_frame(&f);
            continue;
        case F_STATUS: {
            if (f.length == 0) {
                set_status(st, TOTE_OK, "%s", "");
            } else {
                Tote__V1__CallStatus *cs = tote__v1__call_status__unpack(NULL, f.length, f.payload);
                if (!cs) {
                    set_status(st, TOTE_INTERNAL, "server sent an undecodable STATUS (%u bytes)", (unsigned)f.length);
                } else {
                    st->code = (int)cs->code;
                    const char *text = cs->message ? cs->message : "";
                    copy_text(st->message, sizeof st->message, text, strlen(text));
                    tote__v1__call_status__free_unpacked(cs, NULL);
                }
            }
            free_frame(&f);
            if (st->code == TOTE_OK && messages != 1)
                set_status(st, TOTE_INTERNAL, "unary call ended OK with %u response messages instead of 1",
                           (unsigned)messages);
            goto done;
        }
        case F_PING:
            if (!(f.flags & FLAG_ACK)) {
                enum io_result r = send_frame(c, F_PING, FLAG_ACK, 0, f.payload, 8, deadline);
                if (r != IO_OK) {
                    free_frame(&f);
                    if (r == IO_TIMEOUT) {
                        conn_fail(c, NO_GOAWAY, NULL);
                        set_status(st, TOTE_DEADLINE_EXCEEDED, "deadline of %d ms exceeded", timeout_ms);
                    } else {
                        io_failure(c, st, r, " while answering a PING");
                    }
                    goto done;
                }
            }
            free_frame(&f); /* a PING ACK: we send no PINGs, so there is nothing to match */
            continue;
        case F_GOAWAY: {
            goaway_t g;
            parse_goaway(&f, &g);
            free_frame(&f);
            if (g.code != E_NO_ERROR) {
                conn_fail(c, NO_GOAWAY, NULL);
                set_status(st, TOTE_UNAVAILABLE, "connection closed by the server: GOAWAY %s: %s",
                           goaway_code_name(g.code), g.text);
                goto done;
            }
            c->going_away = 1;
            c->goaway_last_stream = g.last_stream;
            if (sid > g.last_stream) {
                set_status(st, TOTE_UNAVAILABLE,
                           "the server is shutting down and did not process the call (GOAWAY: %s); "
                           "retry on a new connection",
                           g.text);
                goto done;
            }
            continue; /* our call is at or below the last stream: it still completes */
        }
        case F_SETTINGS:
            protocol_violation(c, st, E_PROTOCOL_ERROR, "SETTINGS may only be sent once");
            free_frame(&f);
            goto done;
        default: /* HEADERS, CANCEL, HALF_CLOSE */
            protocol_violation(c, st, E_PROTOCOL_ERROR, "%s frames are sent only by the client",
                               frame_type_name(f.type));
            free_frame(&f);
            goto done;
        }
    }
done:
    if (st->code == TOTE_OK) {
        if (!msg) msg = malloc(1); /* an empty message: still hand back a buffer */
        if (!msg) {
            set_status(st, TOTE_RESOURCE_EXHAUSTED, "out of memory");
            return st->code;
        }
        if (response) {
            *response = msg;
            if (response_len) *response_len = msg_len;
        } else {
            free(msg);
        }
    } else {
        free(msg);
    }
    return st->code;
}

void tote_close(tote_conn *c) {
    if (!c) return;
    if (c->fd >= 0 && !c->failed) {
        uint8_t payload[8];
        put_u32(payload, 0);
        put_u32(payload + 4, E_NO_ERROR);
        (void)send_frame(c, F_GOAWAY, 0, 0, payload, sizeof payload, now_ms() + BEST_EFFORT_MS);
    }
    close_socket(c);
    free(c->api_key);
    free(c);
}
