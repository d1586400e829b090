/*
 * totectl-chat: drives tote.v1.Diagnostics/Chat (bidirectional echo) through libtotectl's
 * non-blocking wire layer (ctl_wire), the same code that carries Automation/Connect. Proves the
 * handshake, bidirectional MESSAGE flow, flow control in both directions (more messages than
 * the 64-message window), HALF_CLOSE and STATUS handling against a live server.
 *
 *   totectl-chat --host H --port P --key KEY [--count N] [--size BYTES] [--lockstep]
 *                [--fail-code C] [--timeout-ms MS]
 *
 * Output: "chat: N messages echoed in order, status OK". Exit 0 on success, 2 when the call ends
 * with a non-OK status ("error: CODE: message" on stderr), 3 on a connection failure, 1 on a
 * wrong echo, 64 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "ctl_wire.h"

#include "tote/v1/diagnostics.pb-c.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chat {
    ctl_conn *conn;
    unsigned count, size, received, sent;
    int lockstep;
    int done, status_code, bad;
    char status_msg[256];
    int fail_code;
} chat;

static void payload_for(unsigned i, unsigned size, char *out) {
    int n = snprintf(out, size + 1, "msg-%u-", i);
    for (unsigned k = (unsigned)n; k < size; k++) out[k] = (char)('a' + (i + k) % 26);
    out[size > (unsigned)n ? size : (unsigned)n] = '\0';
}

static void send_one(chat *c) {
    char *buf = malloc(c->size + 32);
    payload_for(c->sent, c->size, buf);
    Tote__V1__EchoRequest req = TOTE__V1__ECHO_REQUEST__INIT;
    Tote__V1__StatusCodeValue fail = TOTE__V1__STATUS_CODE_VALUE__INIT;
    req.payload.data = (uint8_t *)buf;
    req.payload.len = strlen(buf);
    if (c->fail_code) {
        fail.code = c->fail_code;
        req.fail_with = &fail;
    }
    size_t n = tote__v1__echo_request__get_packed_size(&req);
    uint8_t *p = malloc(n ? n : 1);
    tote__v1__echo_request__pack(&req, p);
    if (ctl_conn_send(c->conn, p, n) != 0) c->bad = 1;
    free(p);
    free(buf);
    c->sent++;
    if (c->sent == c->count) ctl_conn_half_close(c->conn);
}

static void on_message(void *user, const uint8_t *p, size_t n) {
    chat *c = user;
    Tote__V1__EchoResponse *r = tote__v1__echo_response__unpack(NULL, n, p);
    if (!r) {
        fprintf(stderr, "error: undecodable EchoResponse\n");
        c->bad = 1;
        return;
    }
    char *want = malloc(c->size + 32);
    payload_for(c->received, c->size, want);
    if (r->index != c->received || r->payload.len != strlen(want) || memcmp(r->payload.data, want, r->payload.len) != 0) {
        fprintf(stderr, "error: response %u is wrong (index %u, %zu bytes)\n", c->received, r->index, r->payload.len);
        c->bad = 1;
    }
    free(want);
    tote__v1__echo_response__free_unpacked(r, NULL);
    c->received++;
    if (c->lockstep && c->sent < c->count) send_one(c);
}

static void on_status(void *user, int code, const char *message) {
    chat *c = user;
    c->done = 1;
    c->status_code = code;
    snprintf(c->status_msg, sizeof c->status_msg, "%s", message);
}

static void usage(void) {
    fprintf(stderr, "usage: totectl-chat --host H --port P --key KEY [--count N] [--size BYTES] [--lockstep]\n"
                    "                    [--fail-code C] [--timeout-ms MS]\n");
    exit(64);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *key = getenv("TOTE_API_KEY");
    int port = 7700, timeout_ms = 10000;
    chat c;
    memset(&c, 0, sizeof c);
    c.count = 200;
    c.size = 32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--lockstep")) {
            c.lockstep = 1;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--count")) c.count = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--size")) c.size = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--fail-code")) c.fail_code = atoi(v);
        else if (!strcmp(a, "--timeout-ms")) timeout_ms = atoi(v);
        else usage();
    }
    if (!key) usage();
    if (c.size < 16) c.size = 16;
    char err[256];
    c.conn = ctl_conn_open(host, port, key, err, sizeof err);
    if (!c.conn) {
        fprintf(stderr, "error: %s\n", err);
        return 3;
    }
    ctl_conn_start_call(c.conn, "tote.v1.Diagnostics/Chat", (uint64_t)timeout_ms);
    if (c.count == 0)
        ctl_conn_half_close(c.conn);
    else if (c.lockstep)
        send_one(&c);
    else
        while (c.sent < c.count) send_one(&c);
    ctl_conn_handler h = {NULL, on_message, on_status, NULL};
    int64_t deadline = ctl_now_ms() + timeout_ms;
    while (!c.done) {
        int64_t left = deadline - ctl_now_ms();
        if (left <= 0) {
            fprintf(stderr, "error: timed out after %d ms (%u of %u echoed)\n", timeout_ms, c.received, c.count);
            ctl_conn_close(c.conn);
            return 3;
        }
        struct pollfd p = {.fd = ctl_conn_fd(c.conn), .events = ctl_conn_events(c.conn), .revents = 0};
        int n = poll(&p, 1, (int)left);
        if (ctl_conn_io(c.conn, n > 0 ? p.revents : 0, &h, &c) != 0 && !c.done) {
            fprintf(stderr, "error: %s\n", ctl_conn_error(c.conn));
            ctl_conn_close(c.conn);
            return 3;
        }
    }
    ctl_conn_close(c.conn);
    if (c.status_code != 0) {
        fprintf(stderr, "error: %s: %s\n", ctl_status_name(c.status_code), c.status_msg);
        return 2;
    }
    if (c.bad || c.received != c.count) {
        fprintf(stderr, "error: %u of %u messages echoed correctly\n", c.received, c.count);
        return 1;
    }
    printf("chat: %u messages echoed in order, status OK\n", c.received);
    return 0;
}
