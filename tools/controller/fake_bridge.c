/*
 * fake_bridge.c: a minimal server side of the Tote wire protocol playing the automation bridge,
 * for testing libtotectl and the simulator without the real bridge. See fake_bridge.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "fake_bridge.h"

#include "tote/v1/rpc.pb-c.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void fb_init(fake_bridge *b, int port) {
    memset(b, 0, sizeof *b);
    b->fd = -1;
    b->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(b->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bind(b->listen_fd, (struct sockaddr *)&a, sizeof a);
    listen(b->listen_fd, 8);
    socklen_t sl = sizeof a;
    getsockname(b->listen_fd, (struct sockaddr *)&a, &sl);
    b->port = ntohs(a.sin_port);
    fcntl(b->listen_fd, F_SETFL, O_NONBLOCK);
}

void fb_drop(fake_bridge *b) {
    if (b->fd >= 0) close(b->fd);
    b->fd = -1;
    b->in.len = b->out.len = 0;
    b->call_open = 0;
}

void fb_free(fake_bridge *b) {
    fb_drop(b);
    close(b->listen_fd);
    for (size_t i = 0; i < b->rx_count; i++) tote__v1__controller_message__free_unpacked(b->rx[i], NULL);
    ctl_buf_free(&b->in);
    ctl_buf_free(&b->out);
}

void fb_frame(fake_bridge *b, uint8_t type, uint32_t stream, const void *p, uint32_t n) {
    ctl_buf_put_frame(&b->out, type, 0, stream, p, n);
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void fb_send(fake_bridge *b, const Tote__V1__BridgeMessage *m) {
    size_t n = tote__v1__bridge_message__get_packed_size(m);
    uint8_t *p = malloc(n ? n : 1);
    tote__v1__bridge_message__pack(m, p);
    fb_frame(b, CTL_F_MESSAGE, b->stream, p, (uint32_t)n);
    free(p);
}

void fb_status(fake_bridge *b, int code, const char *msg) {
    Tote__V1__CallStatus st = TOTE__V1__CALL_STATUS__INIT;
    st.code = code;
    st.message = (char *)msg;
    size_t n = tote__v1__call_status__get_packed_size(&st);
    uint8_t *p = malloc(n ? n : 1);
    tote__v1__call_status__pack(&st, p);
    fb_frame(b, CTL_F_STATUS, b->stream, p, (uint32_t)n);
    free(p);
    b->call_open = 0;
}

/* One step: accept, read, handle frames, write. */
void fb_step(fake_bridge *b) {
    int nfd = accept(b->listen_fd, NULL, NULL);
    if (nfd >= 0) {
        fb_drop(b); /* one controller at a time: a new connection replaces the old */
        b->fd = nfd;
        fcntl(nfd, F_SETFL, O_NONBLOCK);
        b->got_preface = 0;
        b->stream = 0;
        b->peer_goaway = b->peer_half_closed = b->eof = 0;
        b->connections++;
        uint8_t s[18] = {0, 1, 0, 0x40, 0, 0, 0, 2, 0, 0, 4, 0, 0, 3, 0, 0, 0, 8}; /* INITIAL_WINDOW 8 */
        fb_frame(b, CTL_F_SETTINGS, 0, s, sizeof s);
    }
    if (b->fd < 0) return;
    uint8_t tmp[65536];
    ssize_t n;
    while ((n = recv(b->fd, tmp, sizeof tmp, 0)) > 0) ctl_buf_append(&b->in, tmp, (size_t)n);
    if (n == 0) b->eof = 1;
    size_t off = 0;
    if (!b->got_preface && b->in.len >= 8) {
        if (memcmp(b->in.data, "TOTE/1\r\n", 8) != 0) {
            fprintf(stderr, "fake bridge: bad preface\n");
            fb_drop(b);
            return;
        }
        off = 8;
        b->got_preface = 1;
    }
    for (;;) {
        if (!b->got_preface) break;
        if (b->in.len - off < CTL_HEADER_SIZE) break;
        const uint8_t *h = b->in.data + off;
        uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        uint8_t type = h[4];
        uint32_t stream = (uint32_t)h[6] << 24 | (uint32_t)h[7] << 16 | (uint32_t)h[8] << 8 | h[9];
        if (b->in.len - off < CTL_HEADER_SIZE + len) break;
        const uint8_t *p = h + CTL_HEADER_SIZE;
        switch (type) {
        case CTL_F_HEADERS: {
            Tote__V1__CallHeaders *ch = tote__v1__call_headers__unpack(NULL, len, p);
            if (ch) {
                snprintf(b->method, sizeof b->method, "%s", ch->method);
                snprintf(b->auth, sizeof b->auth, "%s", ch->auth_token);
                tote__v1__call_headers__free_unpacked(ch, NULL);
            }
            b->stream = stream;
            b->call_open = 1;
            break;
        }
        case CTL_F_MESSAGE: {
            Tote__V1__ControllerMessage *m = tote__v1__controller_message__unpack(NULL, len, p);
            if (m && b->on_message) {
                b->on_message(b, m, b->user);
                tote__v1__controller_message__free_unpacked(m, NULL);
            } else if (m && b->rx_count < MAX_RX) b->rx[b->rx_count++] = m;
            else if (m) tote__v1__controller_message__free_unpacked(m, NULL);
            uint8_t inc[4]; /* return the credit at once */
            put_u32(inc, 1);
            fb_frame(b, CTL_F_WINDOW_UPDATE, stream, inc, 4);
            break;
        }
        case CTL_F_PING:
            if (!(h[5] & 1)) ctl_buf_put_frame(&b->out, CTL_F_PING, 1, 0, p, 8);
            break;
        case CTL_F_GOAWAY:
            b->peer_goaway = 1;
            break;
        case CTL_F_HALF_CLOSE:
            b->peer_half_closed = 1;
            break;
        default:
            break;
        }
        off += CTL_HEADER_SIZE + len;
    }
    ctl_buf_consume(&b->in, off);
    while (b->out.len > 0 && b->fd >= 0) {
        ssize_t w = send(b->fd, b->out.data, b->out.len, MSG_NOSIGNAL);
        if (w <= 0) break;
        ctl_buf_consume(&b->out, (size_t)w);
    }
}

/* The i-th received message of a kind (0-based), or NULL. */
const Tote__V1__ControllerMessage *fb_find(const fake_bridge *b, int body_case, size_t nth) {
    for (size_t i = 0; i < b->rx_count; i++)
        if ((int)b->rx[i]->body_case == body_case && nth-- == 0) return b->rx[i];
    return NULL;
}

size_t fb_count(const fake_bridge *b, int body_case) {
    size_t n = 0;
    for (size_t i = 0; i < b->rx_count; i++)
        if ((int)b->rx[i]->body_case == body_case) n++;
    return n;
}

uint64_t fb_last_ack(const fake_bridge *b) {
    uint64_t a = 0;
    for (size_t i = 0; i < b->rx_count; i++)
        if (b->rx[i]->body_case == TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK) a = b->rx[i]->ack->sequence;
    return a;
}

