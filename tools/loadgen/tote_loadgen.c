/*
 * tote_loadgen.c: a closed-loop load generator for Tote point reads, the counterpart of
 * redis-benchmark. One thread, epoll, C connections each with P calls outstanding (one by
 * default), random keys from a file, a warm-up then a timed window; prints calls per second and
 * latency percentiles (and redis-benchmark's CSV line with --csv). Exits non-zero on any call that
 * does not end OK with the right answer, and on any protocol violation by the server.
 *
 *     tote-loadgen -p 7700 -k KEY -t order-view -f ids.txt -c 64 -w 1 -d 5 --csv
 *
 * Methods (-t):
 *   order-view    tote.v1.Query/GetOrderView{order_id = key}; the response's order_id must equal
 *                 the key.
 *   autocomplete  tote.v1.Query/Autocomplete{prefix = key}; the response must hold at least one
 *                 suggestion.
 *   search        tote.v1.Query/SearchCatalog: key = CURRENCY|CATEGORY|ATTR=V1,V2|ATTR=V3...
 *                 (e.g. EUR|clothing|colour=black,blue|material=cotton): that category with its
 *                 descendants, one filter per ATTR (string values, OR within), facets for the
 *                 filtered attributes (up to 50 values each), the first page (the service's
 *                 default size); the response must hold a facet.
 *   echo          tote.v1.Diagnostics/Echo{payload = key}; the response's payload must equal the
 *                 key (served by every server; for testing this tool).
 *
 * Wire protocol: docs/PROTOCOL.md. Requests and call headers are built with protobuf-c once per
 * key at start-up; each call is HEADERS + MESSAGE|END_STREAM in one write on a fresh stream id.
 * Every frame from the server is checked as §2 says; PINGs are answered; WINDOW_UPDATEs are
 * checked and ignored (unary calls never need credit); a GOAWAY ends the run with an error.
 * Answers are checked by walking the response's protobuf fields (no allocation), or, with
 * --decode, by unpacking the whole response with protobuf-c.
 */
#define _GNU_SOURCE

#include "tote/v1/diagnostics.pb-c.h"
#include "tote/v1/order.pb-c.h"
#include "tote/v1/query.pb-c.h"
#include "tote/v1/rpc.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- Protocol constants (docs/PROTOCOL.md §2-§4) ----------------------------------------- */

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
};
#define FLAG_END_STREAM 0x1u
#define FLAG_ACK 0x1u
#define HEADER_SIZE 10u
#define E_PROTOCOL_ERROR 1u
/* What we announce as MAX_FRAME_SIZE; point-read answers are far smaller. */
#define LOCAL_MAX_FRAME_SIZE (1u << 20)
#define MAX_STREAM_ID 0x7ffffffeu
#define MAX_PIPELINE 64

static const uint8_t PREFACE[8] = {'T', 'O', 'T', 'E', '/', '1', '\r', '\n'};
static const char *const FRAME_NAMES[] = {"SETTINGS", "HEADERS", "MESSAGE", "STATUS", "CANCEL",
                                          "WINDOW_UPDATE", "PING", "GOAWAY", "HALF_CLOSE"};
static const char *const CODE_NAMES[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* ---- Run configuration and state --------------------------------------------------------- */

typedef enum { M_ORDER_VIEW, M_AUTOCOMPLETE, M_SEARCH, M_ECHO } method_kind;

typedef struct {
    const char *host;
    int port;
    const char *key;
    int connections;
    int pipeline;
    method_kind method;
    const char *keys_file;
    double warmup_s;
    double seconds;
    int csv;
    int decode;
    int quiet;
    uint64_t timeout_micros;
    int fail_code; /* echo only: ask the server to fail calls with this code (testing) */
    uint64_t seed;
} options_t;

/* One key: its text (to check answers) and its pre-encoded frames HEADERS + MESSAGE|ES, with
 * the stream id fields left to be patched per call. */
typedef struct {
    char *text;
    size_t text_len;
    uint8_t *frames;
    size_t frames_len;
} key_t_;

typedef struct {
    uint32_t stream;  /* 0 = free slot */
    uint32_t key;     /* index into keys */
    uint64_t started; /* ns */
    int got_message;
} call_t;

typedef struct {
    int fd;
    int ready; /* the server's SETTINGS arrived */
    uint32_t next_stream;
    uint32_t last_opened;
    uint32_t server_max_frame;
    uint32_t server_max_streams;
    int inflight;
    call_t calls[MAX_PIPELINE];
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int want_write;
} conn_t;

static options_t opt;
static key_t_ *keys;
static size_t key_count;
static size_t header_payload_offset; /* where the HEADERS frame's stream id sits: 6 */
static size_t message_frame_offset;  /* per key: where the MESSAGE frame starts */
static int epfd;
static uint64_t rng_state;
static uint64_t measure_start, measure_end;
static uint64_t *samples;
static size_t sample_count, sample_cap;
static uint64_t calls_total;
static const char *method_name;
static const char *method_label;

/* ---- Helpers ------------------------------------------------------------------------------- */

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tote-loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die(1, "out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) die(1, "out of memory");
    return p;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t next_random(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
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

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_header(uint8_t *p, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream) {
    put_u32(p, length);
    p[4] = type;
    p[5] = flags;
    put_u32(p + 6, stream);
}

/* Untrusted text from the server, printable: control characters become '?'. */
static void printable(char *dst, size_t cap, const char *src, size_t n) {
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

static const char *code_name(int code) {
    static char other[32];
    if (code >= 0 && code <= 16) return CODE_NAMES[code];
    snprintf(other, sizeof other, "CODE_%d", code);
    return other;
}

/* ---- Protobuf wire walking (answers are checked without allocating) ------------------------ */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Finds length-delimited field `field` (the last occurrence, as protobuf's merge rule has it for
 * a singular field) and counts its occurrences. Returns -1 for malformed bytes. */
static int find_bytes_field(const uint8_t *p, size_t len, uint32_t field, const uint8_t **value,
                            size_t *value_len, size_t *occurrences) {
    const uint8_t *end = p + len;
    *value = NULL;
    *value_len = 0;
    *occurrences = 0;
    while (p < end) {
        uint64_t tag, n;
        if (read_varint(&p, end, &tag) != 0 || tag >> 3 == 0) return -1;
        switch (tag & 7) {
        case 0:
            if (read_varint(&p, end, &n) != 0) return -1;
            break;
        case 1:
            if (end - p < 8) return -1;
            p += 8;
            break;
        case 2:
            if (read_varint(&p, end, &n) != 0 || n > (uint64_t)(end - p)) return -1;
            if (tag >> 3 == field) {
                *value = p;
                *value_len = (size_t)n;
                (*occurrences)++;
            }
            p += n;
            break;
        case 5:
            if (end - p < 4) return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* ---- Requests ------------------------------------------------------------------------------- */

/* Packs the SearchCatalog request a search key describes (CURRENCY|CATEGORY|ATTR=V1,V2|...);
 * exits naming the key when it is malformed. */
static uint8_t *pack_search(const char *text, size_t *len) {
    char *copy = strdup(text);
    if (!copy) die(2, "out of memory");
    char *fields[1 + 2 + 16];
    size_t n = 0;
    for (char *save = NULL, *f = strtok_r(copy, "|", &save); f; f = strtok_r(NULL, "|", &save)) {
        if (n == sizeof fields / sizeof *fields) die(2, "search key \"%s\": more than 16 filters", text);
        fields[n++] = f;
    }
    if (n < 2) die(2, "search key \"%s\": expected CURRENCY|CATEGORY|ATTR=V1,V2|...", text);
    size_t filter_count = n - 2;
    Tote__V1__SearchCatalogRequest m;
    tote__v1__search_catalog_request__init(&m);
    m.currency = fields[0];
    m.category_slug = fields[1];
    m.max_facet_values = 50;
    m.omit_price_stats = 1; /* as ReadSideBench's requests: PostgreSQL's query computes none either */
    Tote__V1__AttributeFilter filters[16], *filter_ptrs[16];
    char *facets[16];
    Tote__V1__AttributeValue values[16][16], *value_ptrs[16][16];
    for (size_t i = 0; i < filter_count; i++) {
        char *eq = strchr(fields[2 + i], '=');
        if (!eq || eq == fields[2 + i] || eq[1] == 0) die(2, "search key \"%s\": filter \"%s\" is not ATTR=V1,V2", text, fields[2 + i]);
        *eq = 0;
        tote__v1__attribute_filter__init(&filters[i]);
        filters[i].attribute = fields[2 + i];
        facets[i] = fields[2 + i];
        size_t v = 0;
        for (char *save = NULL, *value = strtok_r(eq + 1, ",", &save); value; value = strtok_r(NULL, ",", &save)) {
            if (v == 16) die(2, "search key \"%s\": more than 16 values for %s", text, fields[2 + i]);
            tote__v1__attribute_value__init(&values[i][v]);
            values[i][v].value_case = TOTE__V1__ATTRIBUTE_VALUE__VALUE_STRING_VALUE;
            values[i][v].string_value = value;
            value_ptrs[i][v] = &values[i][v];
            v++;
        }
        filters[i].n_values = v;
        filters[i].values = value_ptrs[i];
        filter_ptrs[i] = &filters[i];
    }
    m.n_filters = filter_count;
    m.filters = filter_ptrs;
    m.n_facet_attributes = filter_count;
    m.facet_attributes = facets;
    *len = tote__v1__search_catalog_request__get_packed_size(&m);
    uint8_t *request = xmalloc(*len);
    tote__v1__search_catalog_request__pack(&m, request);
    free(copy);
    return request;
}

/* Encodes key i's request and its frames: HEADERS(stream 0 placeholder) + MESSAGE|ES. */
static void build_frames(key_t_ *k, const uint8_t *headers, size_t headers_len) {
    size_t len;
    uint8_t *request;
    switch (opt.method) {
    case M_ORDER_VIEW: {
        Tote__V1__GetOrderViewRequest m;
        tote__v1__get_order_view_request__init(&m);
        m.order_id = k->text;
        len = tote__v1__get_order_view_request__get_packed_size(&m);
        request = xmalloc(len);
        tote__v1__get_order_view_request__pack(&m, request);
        break;
    }
    case M_AUTOCOMPLETE: {
        Tote__V1__AutocompleteRequest m;
        tote__v1__autocomplete_request__init(&m);
        m.prefix = k->text;
        len = tote__v1__autocomplete_request__get_packed_size(&m);
        request = xmalloc(len);
        tote__v1__autocomplete_request__pack(&m, request);
        break;
    }
    case M_SEARCH:
        request = pack_search(k->text, &len);
        break;
    case M_ECHO:
    default: {
        Tote__V1__EchoRequest m;
        Tote__V1__StatusCodeValue fail;
        tote__v1__echo_request__init(&m);
        m.payload.data = (uint8_t *)k->text;
        m.payload.len = k->text_len;
        if (opt.fail_code != 0) {
            tote__v1__status_code_value__init(&fail);
            fail.code = (Tote__V1__StatusCode)opt.fail_code;
            m.fail_with = &fail;
        }
        len = tote__v1__echo_request__get_packed_size(&m);
        request = xmalloc(len);
        tote__v1__echo_request__pack(&m, request);
        break;
    }
    }
    k->frames_len = 2 * HEADER_SIZE + headers_len + len;
    k->frames = xmalloc(k->frames_len);
    put_header(k->frames, (uint32_t)headers_len, F_HEADERS, 0, 0);
    memcpy(k->frames + HEADER_SIZE, headers, headers_len);
    put_header(k->frames + HEADER_SIZE + headers_len, (uint32_t)len, F_MESSAGE, FLAG_END_STREAM, 0);
    memcpy(k->frames + 2 * HEADER_SIZE + headers_len, request, len);
    message_frame_offset = HEADER_SIZE + headers_len;
    free(request);
}

static void load_keys(void) {
    FILE *f = fopen(opt.keys_file, "r");
    if (!f) die(2, "cannot open keys file %s: %s", opt.keys_file, strerror(errno));
    size_t cap = 1024;
    keys = xmalloc(cap * sizeof *keys);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    while ((n = getline(&line, &line_cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (key_count == cap) keys = xrealloc(keys, (cap *= 2) * sizeof *keys);
        keys[key_count].text = strdup(line);
        if (!keys[key_count].text) die(1, "out of memory");
        keys[key_count].text_len = (size_t)n;
        key_count++;
    }
    free(line);
    fclose(f);
    if (key_count == 0) die(2, "keys file %s holds no keys", opt.keys_file);

    /* The call headers are the same for every call: encode them once. */
    Tote__V1__CallHeaders h;
    tote__v1__call_headers__init(&h);
    h.method = (char *)method_name;
    h.auth_token = (char *)opt.key;
    h.timeout_micros = opt.timeout_micros;
    size_t hlen = tote__v1__call_headers__get_packed_size(&h);
    uint8_t *headers = xmalloc(hlen);
    tote__v1__call_headers__pack(&h, headers);
    for (size_t i = 0; i < key_count; i++) build_frames(&keys[i], headers, hlen);
    free(headers);
    header_payload_offset = 6;
}

/* ---- Connections ---------------------------------------------------------------------------- */

static void update_events(conn_t *c) {
    struct epoll_event ev = {.events = EPOLLIN | (c->want_write ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) die(1, "epoll_ctl: %s", strerror(errno));
}

static void queue_bytes(conn_t *c, const uint8_t *p, size_t n) {
    if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (c->out_len + n > c->out_cap) c->out_cap = c->out_cap ? 2 * c->out_cap : 4096;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Writes what is queued; keeps EPOLLOUT armed only while bytes remain. */
static void flush_conn(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_write) {
                c->want_write = 1;
                update_events(c);
            }
            return;
        } else {
            die(1, "connection lost while writing: %s", n < 0 ? strerror(errno) : "closed");
        }
    }
    c->out_off = c->out_len = 0;
    if (c->want_write) {
        c->want_write = 0;
        update_events(c);
    }
}

/* Sends a GOAWAY(PROTOCOL_ERROR) naming the violation, then fails the run. */
__attribute__((noreturn, format(printf, 2, 3))) static void protocol_error(conn_t *c, const char *fmt, ...) {
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    uint8_t frame[HEADER_SIZE + 8 + sizeof text];
    size_t tlen = strlen(text);
    put_header(frame, (uint32_t)(8 + tlen), F_GOAWAY, 0, 0);
    put_u32(frame + HEADER_SIZE, 0);
    put_u32(frame + HEADER_SIZE + 4, E_PROTOCOL_ERROR);
    memcpy(frame + HEADER_SIZE + 8, text, tlen);
    (void)!send(c->fd, frame, HEADER_SIZE + 8 + tlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    die(1, "protocol error from the server: %s", text);
}

/* Opens a call for a random key in a free slot; the frames go out with the next flush. */
static void start_call(conn_t *c) {
    if (c->next_stream > MAX_STREAM_ID) die(1, "a connection ran out of stream ids");
    int slot = 0;
    while (c->calls[slot].stream != 0) slot++;
    uint32_t k = (uint32_t)(next_random() % key_count);
    key_t_ *key = &keys[k];
    uint32_t id = c->next_stream;
    c->next_stream += 1;
    put_u32(key->frames + header_payload_offset, id);
    put_u32(key->frames + message_frame_offset + 6, id);
    queue_bytes(c, key->frames, key->frames_len);
    c->last_opened = id;
    c->calls[slot] = (call_t){.stream = id, .key = k, .started = now_ns(), .got_message = 0};
    c->inflight++;
}

static call_t *find_call(conn_t *c, uint32_t stream) {
    for (int i = 0; i < opt.pipeline; i++)
        if (c->calls[i].stream == stream) return &c->calls[i];
    return NULL;
}

/* Checks one response message against the call's key; exits on a wrong answer. */
static void check_answer(const call_t *call, const uint8_t *p, size_t len) {
    const key_t_ *key = &keys[call->key];
    if (opt.decode) {
        int ok = 0;
        switch (opt.method) {
        case M_ORDER_VIEW: {
            Tote__V1__OrderView *v = tote__v1__order_view__unpack(NULL, len, p);
            ok = v && v->order_id && strcmp(v->order_id, key->text) == 0;
            if (v) tote__v1__order_view__free_unpacked(v, NULL);
            break;
        }
        case M_AUTOCOMPLETE: {
            Tote__V1__AutocompleteResponse *r = tote__v1__autocomplete_response__unpack(NULL, len, p);
            ok = r && r->n_suggestions > 0;
            if (r) tote__v1__autocomplete_response__free_unpacked(r, NULL);
            break;
        }
        case M_SEARCH: {
            Tote__V1__SearchCatalogResponse *r = tote__v1__search_catalog_response__unpack(NULL, len, p);
            ok = r && r->n_facets > 0;
            if (r) tote__v1__search_catalog_response__free_unpacked(r, NULL);
            break;
        }
        case M_ECHO: {
            Tote__V1__EchoResponse *r = tote__v1__echo_response__unpack(NULL, len, p);
            ok = r && r->payload.len == key->text_len && memcmp(r->payload.data, key->text, key->text_len) == 0;
            if (r) tote__v1__echo_response__free_unpacked(r, NULL);
            break;
        }
        }
        if (!ok) die(1, "wrong answer to %s for key \"%s\" (%zu bytes, decoded with protobuf-c)", method_label, key->text, len);
        return;
    }
    const uint8_t *value;
    size_t value_len, occurrences;
    if (find_bytes_field(p, len, opt.method == M_SEARCH ? 3 : 1, &value, &value_len, &occurrences) != 0)
        die(1, "%s answered %zu bytes that are not a protobuf message (key \"%s\")", method_label, len, key->text);
    switch (opt.method) {
    case M_ORDER_VIEW:
    case M_ECHO:
        if (occurrences == 0 || value_len != key->text_len || memcmp(value, key->text, value_len) != 0) {
            char got[128];
            printable(got, sizeof got, (const char *)value, value ? value_len : 0);
            die(1, "wrong answer: %s for \"%s\" answered \"%s\"", method_label, key->text, got);
        }
        break;
    case M_AUTOCOMPLETE:
        if (occurrences == 0) die(1, "wrong answer: Autocomplete for \"%s\" answered no suggestion", key->text);
        break;
    case M_SEARCH:
        if (occurrences == 0) die(1, "wrong answer: SearchCatalog for \"%s\" answered no facet", key->text);
        break;
    }
}

static void record_latency(uint64_t ns) {
    if (sample_count == sample_cap) samples = xrealloc(samples, (sample_cap = sample_cap ? 2 * sample_cap : 1 << 16) * sizeof *samples);
    samples[sample_count++] = ns;
}

/* Handles one whole frame (header already validated against §2). */
static void handle_frame(conn_t *c, uint8_t type, uint8_t flags, uint32_t stream, const uint8_t *p, uint32_t len) {
    switch (type) {
    case F_SETTINGS:
        if (c->ready) protocol_error(c, "SETTINGS may only be sent once");
        for (uint32_t i = 0; i + 6 <= len; i += 6) {
            uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
            uint32_t value = get_u32(p + i + 2);
            if (id == 1) c->server_max_frame = value;
            if (id == 2) c->server_max_streams = value;
        }
        if ((uint32_t)opt.pipeline > c->server_max_streams)
            die(1, "-P %d exceeds the server's MAX_CONCURRENT_STREAMS %u", opt.pipeline, c->server_max_streams);
        if (keys[0].frames_len - 2 * HEADER_SIZE > c->server_max_frame)
            die(1, "a request exceeds the server's MAX_FRAME_SIZE %u", c->server_max_frame);
        c->ready = 1;
        for (int i = 0; i < opt.pipeline; i++) start_call(c);
        return;
    case F_PING:
        if (!(flags & FLAG_ACK)) {
            uint8_t ack[HEADER_SIZE + 8];
            put_header(ack, 8, F_PING, FLAG_ACK, 0);
            memcpy(ack + HEADER_SIZE, p, 8);
            queue_bytes(c, ack, sizeof ack);
        }
        return;
    case F_GOAWAY: {
        char text[256];
        printable(text, sizeof text, (const char *)p + 8, len - 8);
        die(1, "the server sent GOAWAY(last stream %u, code %u): %s", get_u32(p), get_u32(p + 4), text);
    }
    case F_WINDOW_UPDATE:
        if (get_u32(p) == 0) protocol_error(c, "WINDOW_UPDATE increment must be positive");
        return; /* unary calls never need credit from the server */
    case F_MESSAGE:
    case F_STATUS:
        break;
    default: /* HEADERS, CANCEL, HALF_CLOSE: frames a server never sends */
        protocol_error(c, "%s frame from the server", FRAME_NAMES[type]);
    }
    if (!c->ready) protocol_error(c, "%s before SETTINGS", FRAME_NAMES[type]);
    call_t *call = find_call(c, stream);
    if (!call) {
        if (stream > c->last_opened) protocol_error(c, "%s on stream %u, which was never opened", FRAME_NAMES[type], stream);
        return; /* an ended call: cannot happen without CANCEL, but ignoring is the rule */
    }
    if (type == F_MESSAGE) {
        if (call->got_message) die(1, "%s answered a unary call with two messages (stream %u)", method_label, stream);
        call->got_message = 1;
        check_answer(call, p, len);
        return;
    }
    /* STATUS: the call ends. */
    if (len > 0) {
        Tote__V1__CallStatus *st = tote__v1__call_status__unpack(NULL, len, p);
        if (!st) protocol_error(c, "STATUS on stream %u is not a valid tote.v1.CallStatus", stream);
        if (st->code != 0) {
            char text[512];
            printable(text, sizeof text, st->message ? st->message : "", st->message ? strlen(st->message) : 0);
            die(1, "%s for \"%s\" failed: %s: %s", method_label, keys[call->key].text, code_name(st->code), text);
        }
        tote__v1__call_status__free_unpacked(st, NULL);
    }
    if (!call->got_message) die(1, "%s for \"%s\" ended OK without a response message", method_label, keys[call->key].text);
    uint64_t now = now_ns();
    calls_total++;
    if (now >= measure_start && now < measure_end) record_latency(now - call->started);
    call->stream = 0;
    c->inflight--;
    if (now < measure_end) start_call(c);
}

/* Validates frame headers as docs/PROTOCOL.md §2 orders, and handles every whole frame. */
static void process_input(conn_t *c) {
    size_t pos = 0;
    while (c->in_len - pos >= HEADER_SIZE) {
        const uint8_t *h = c->in + pos;
        uint32_t len = get_u32(h);
        uint8_t type = h[4], flags = h[5];
        uint32_t stream = get_u32(h + 6);
        if (len > LOCAL_MAX_FRAME_SIZE) protocol_error(c, "frame of %u bytes exceeds MAX_FRAME_SIZE %u", len, LOCAL_MAX_FRAME_SIZE);
        if (type > F_HALF_CLOSE) protocol_error(c, "unknown frame type 0x%x", type);
        uint8_t allowed = (type == F_HEADERS || type == F_MESSAGE || type == F_PING) ? 1 : 0;
        if (flags & ~allowed) protocol_error(c, "%s frame with undefined flags 0x%x", FRAME_NAMES[type], flags);
        int connection_level = type == F_SETTINGS || type == F_PING || type == F_GOAWAY;
        if (connection_level && stream != 0) protocol_error(c, "%s frame must be on stream 0, not %u", FRAME_NAMES[type], stream);
        if (!connection_level && stream == 0) protocol_error(c, "%s frame must not be on stream 0", FRAME_NAMES[type]);
        if ((type == F_SETTINGS && len % 6 != 0) || (type == F_PING && len != 8) ||
            (type == F_WINDOW_UPDATE && len != 4) || (type == F_GOAWAY && len < 8) ||
            ((type == F_CANCEL || type == F_HALF_CLOSE) && len != 0))
            protocol_error(c, "%s payload of %u bytes has the wrong size", FRAME_NAMES[type], len);
        if (!c->ready && type != F_SETTINGS && type != F_GOAWAY)
            protocol_error(c, "expected SETTINGS first, got %s", FRAME_NAMES[type]);
        if (c->in_len - pos < HEADER_SIZE + (size_t)len) {
            size_t need = HEADER_SIZE + (size_t)len;
            if (need > c->in_cap) { /* grow for a large frame (bounded by our MAX_FRAME_SIZE) */
                memmove(c->in, c->in + pos, c->in_len - pos);
                c->in_len -= pos;
                pos = 0;
                c->in = xrealloc(c->in, c->in_cap = need);
            }
            break;
        }
        handle_frame(c, type, flags, stream, h + HEADER_SIZE, len);
        pos += HEADER_SIZE + len;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

static void read_conn(conn_t *c) {
    for (;;) {
        if (c->in_len == c->in_cap) c->in = xrealloc(c->in, c->in_cap *= 2);
        size_t room = c->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            process_input(c);
            /* Level-triggered: one read per readiness unless it filled the buffer (saves the
             * EAGAIN syscall redis-benchmark does not make either). */
            if ((size_t)n < room) break;
        } else if (n == 0) {
            die(1, "the server closed a connection");
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            die(1, "connection lost while reading: %s", strerror(errno));
        }
    }
    flush_conn(c);
}

static void open_conn(conn_t *c, const struct sockaddr *addr, socklen_t addrlen) {
    memset(c, 0, sizeof *c);
    c->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die(3, "socket: %s", strerror(errno));
    if (connect(c->fd, addr, addrlen) != 0) die(3, "cannot connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->next_stream = 1;
    c->server_max_frame = 4u << 20;
    c->server_max_streams = 1024;
    c->in_cap = 64 * 1024;
    c->in = xmalloc(c->in_cap);
    uint8_t hello[8 + HEADER_SIZE + 18];
    memcpy(hello, PREFACE, 8);
    put_header(hello + 8, 18, F_SETTINGS, 0, 0);
    uint8_t *s = hello + 8 + HEADER_SIZE;
    put_u16(s, 1), put_u32(s + 2, LOCAL_MAX_FRAME_SIZE);
    put_u16(s + 6, 2), put_u32(s + 8, 1024);
    put_u16(s + 12, 3), put_u32(s + 14, 64);
    queue_bytes(c, hello, sizeof hello);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die(1, "epoll_ctl: %s", strerror(errno));
    flush_conn(c);
}

/* ---- Main ----------------------------------------------------------------------------------- */

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(double pct) {
    if (sample_count == 0) return 0;
    size_t i = (size_t)(pct / 100.0 * (double)sample_count);
    if (i >= sample_count) i = sample_count - 1;
    return (double)samples[i] / 1e6;
}

static void usage(FILE *to) {
    fputs("usage: tote-loadgen -t order-view|autocomplete|search|echo -f KEYS_FILE [-h HOST] [-p PORT] [-k API_KEY]\n"
          "                    [-c CONNECTIONS] [-P CALLS_PER_CONNECTION] [-w WARMUP_S] [-d SECONDS]\n"
          "                    [--csv] [--decode] [--timeout-ms MS] [--seed N] [--fail-code N] [-q]\n"
          "  -t  the read: GetOrderView (key = order id), Autocomplete (key = prefix), SearchCatalog\n"
          "      (key = CURRENCY|CATEGORY|ATTR=V1,V2|..., facets for those attributes, the first\n"
          "      page), or Diagnostics/Echo (key = payload)\n"
          "  -f  keys, one a line; each call picks one at random\n"
          "  -k  API key (default: $TOTE_API_KEY)\n"
          "  -c  connections (default 64), each with -P calls outstanding (default 1)\n"
          "  -w, -d  warm-up and measured seconds (defaults 1 and 5)\n"
          "  --csv     also print redis-benchmark's CSV (header and one line)\n"
          "  --decode  check answers by unpacking them with protobuf-c (default: walk the fields)\n"
          "  --fail-code N  echo only: the server fails each call with code N (tests the error path)\n"
          "Exit: 0 all calls OK with the right answers; 1 a failed call, wrong answer or protocol\n"
          "error; 2 usage; 3 cannot connect.\n",
          to);
}

int main(int argc, char **argv) {
    opt = (options_t){.host = "127.0.0.1", .port = 7700, .key = getenv("TOTE_API_KEY"), .connections = 64,
                      .pipeline = 1, .method = M_ORDER_VIEW, .warmup_s = 1, .seconds = 5, .seed = 2026};
    int method_set = 0;
    static const struct option longs[] = {
        {"csv", no_argument, NULL, 'C'},        {"decode", no_argument, NULL, 'D'},
        {"timeout-ms", required_argument, NULL, 'T'}, {"seed", required_argument, NULL, 'S'},
        {"fail-code", required_argument, NULL, 'F'},  {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:k:c:P:t:f:w:d:q", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'k': opt.key = optarg; break;
        case 'c': opt.connections = atoi(optarg); break;
        case 'P': opt.pipeline = atoi(optarg); break;
        case 't':
            method_set = 1;
            if (strcmp(optarg, "order-view") == 0) opt.method = M_ORDER_VIEW;
            else if (strcmp(optarg, "autocomplete") == 0) opt.method = M_AUTOCOMPLETE;
            else if (strcmp(optarg, "search") == 0) opt.method = M_SEARCH;
            else if (strcmp(optarg, "echo") == 0) opt.method = M_ECHO;
            else { usage(stderr); return 2; }
            break;
        case 'f': opt.keys_file = optarg; break;
        case 'w': opt.warmup_s = atof(optarg); break;
        case 'd': opt.seconds = atof(optarg); break;
        case 'q': opt.quiet = 1; break;
        case 'C': opt.csv = 1; break;
        case 'D': opt.decode = 1; break;
        case 'T': opt.timeout_micros = (uint64_t)strtoull(optarg, NULL, 10) * 1000; break;
        case 'S': opt.seed = strtoull(optarg, NULL, 10); break;
        case 'F': opt.fail_code = atoi(optarg); break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !method_set || !opt.keys_file || !opt.key || opt.port <= 0 || opt.port > 65535 ||
        opt.connections < 1 || opt.pipeline < 1 || opt.pipeline > MAX_PIPELINE || opt.seconds <= 0 || opt.warmup_s < 0 ||
        (opt.fail_code != 0 && opt.method != M_ECHO)) {
        if (!opt.key) fputs("tote-loadgen: no API key (-k or $TOTE_API_KEY)\n", stderr);
        usage(stderr);
        return 2;
    }
    switch (opt.method) {
    case M_ORDER_VIEW: method_name = "tote.v1.Query/GetOrderView"; method_label = "GetOrderView"; break;
    case M_AUTOCOMPLETE: method_name = "tote.v1.Query/Autocomplete"; method_label = "Autocomplete"; break;
    case M_SEARCH: method_name = "tote.v1.Query/SearchCatalog"; method_label = "SearchCatalog"; break;
    case M_ECHO: method_name = "tote.v1.Diagnostics/Echo"; method_label = "Echo"; break;
    }
    signal(SIGPIPE, SIG_IGN);
    rng_state = opt.seed;
    load_keys();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", opt.port);
    int rc = getaddrinfo(opt.host, port_text, &hints, &ai);
    if (rc != 0) die(3, "cannot resolve %s: %s", opt.host, gai_strerror(rc));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die(1, "epoll_create1: %s", strerror(errno));
    conn_t *conns = xmalloc((size_t)opt.connections * sizeof *conns);
    uint64_t begin = now_ns();
    measure_start = begin + (uint64_t)(opt.warmup_s * 1e9);
    measure_end = measure_start + (uint64_t)(opt.seconds * 1e9);
    for (int i = 0; i < opt.connections; i++) open_conn(&conns[i], ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);

    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= measure_end) break;
        int timeout_ms = (int)((measure_end - now) / 1000000) + 1;
        int n = epoll_wait(epfd, events, 256, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die(1, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_conn(c);
            else if (events[i].events & EPOLLOUT) flush_conn(c);
        }
    }
    uint64_t window = measure_end - measure_start;
    int not_ready = 0;
    for (int i = 0; i < opt.connections; i++) {
        if (!conns[i].ready) not_ready++;
        close(conns[i].fd); /* calls still in flight are abandoned, like redis-benchmark's */
    }
    if (not_ready) die(1, "%d connection(s) never received the server's SETTINGS", not_ready);
    if (sample_count == 0) die(1, "no call completed in the measured window");

    qsort(samples, sample_count, sizeof *samples, compare_u64);
    double sum = 0;
    for (size_t i = 0; i < sample_count; i++) sum += (double)samples[i];
    double qps = (double)sample_count / ((double)window / 1e9);
    if (!opt.quiet)
        printf("tote-loadgen: %s, %d connections x %d outstanding, %zu keys, %.1f s after %.1f s warm-up: "
               "%.0f calls/s, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, max %.3f ms (%zu calls measured, %llu in all)\n",
               method_label, opt.connections, opt.pipeline, key_count, opt.seconds, opt.warmup_s, qps,
               percentile_ms(50), percentile_ms(95), percentile_ms(99), (double)samples[sample_count - 1] / 1e6,
               sample_count, (unsigned long long)calls_total);
    if (opt.csv) {
        printf("\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n");
        printf("\"%s\",\"%.2f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\"\n", method_label, qps,
               sum / (double)sample_count / 1e6, (double)samples[0] / 1e6, percentile_ms(50), percentile_ms(95),
               percentile_ms(99), (double)samples[sample_count - 1] / 1e6);
    }
    return 0;
}
