/*
 * tote_client.h: a small blocking C client for the Tote wire protocol v1 (docs/PROTOCOL.md).
 *
 * One connection, one call at a time, unary calls only. C11 and POSIX sockets; payloads are
 * opaque serialized protobuf messages (encode them with protobuf-c or anything else).
 *
 *     char err[TOTE_ERRBUF_SIZE];
 *     tote_conn *conn;
 *     if (tote_connect("127.0.0.1", 7700, key, 5000, &conn, err) != 0) { puts(err); exit(3); }
 *     uint8_t *resp; size_t resp_len; tote_status st;
 *     if (tote_unary(conn, "tote.v1.Health/Check", req, req_len, 5000, &resp, &resp_len, &st) == 0) {
 *         ... decode resp ...; free(resp);
 *     } else {
 *         fprintf(stderr, "%s: %s\n", tote_status_code_name(st.code), st.message);
 *     }
 *     tote_close(conn);
 *
 * Nothing here is thread-safe: use one connection from one thread at a time.
 *
 * The library reads the socket only inside tote_connect and tote_unary, so server PINGs are
 * answered only during calls. The server closes connections that stay silent through its
 * keepalive (a PING 30-60 s after the last bytes, GOAWAY TIMEOUT 10 s later): after a long
 * idle period expect UNAVAILABLE with tote_conn_failed() true, and reconnect.
 */
#ifndef TOTE_CLIENT_H
#define TOTE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of the error buffer tote_connect fills on failure. */
#define TOTE_ERRBUF_SIZE 512

/* Largest frame payload this client accepts; announced to the server as MAX_FRAME_SIZE. */
#define TOTE_CLIENT_MAX_FRAME_SIZE (4u * 1024u * 1024u)

/* Canonical status codes (gRPC numbering), as in tote.v1.StatusCode. */
enum {
    TOTE_OK = 0,
    TOTE_CANCELLED = 1,
    TOTE_UNKNOWN = 2,
    TOTE_INVALID_ARGUMENT = 3,
    TOTE_DEADLINE_EXCEEDED = 4,
    TOTE_NOT_FOUND = 5,
    TOTE_ALREADY_EXISTS = 6,
    TOTE_PERMISSION_DENIED = 7,
    TOTE_RESOURCE_EXHAUSTED = 8,
    TOTE_FAILED_PRECONDITION = 9,
    TOTE_ABORTED = 10,
    TOTE_OUT_OF_RANGE = 11,
    TOTE_UNIMPLEMENTED = 12,
    TOTE_INTERNAL = 13,
    TOTE_UNAVAILABLE = 14,
    TOTE_DATA_LOSS = 15,
    TOTE_UNAUTHENTICATED = 16
};

/* The outcome of a call: the server's STATUS, or a status this library made up for a local
 * failure (connection lost: UNAVAILABLE; protocol violation by the server: INTERNAL; local
 * deadline: DEADLINE_EXCEEDED). `message` is always NUL-terminated; control characters from the
 * server are replaced by '?'. */
typedef struct tote_status {
    int code;
    char message[512];
} tote_status;

typedef struct tote_conn tote_conn;

/* "OK", "NOT_FOUND", ...; "CODE_<n>" for a number outside 0...16 (in a thread-local buffer). */
const char *tote_status_code_name(int code);

/* Opens a TCP connection to host:port, sends the preface and SETTINGS, and waits for the
 * server's SETTINGS. `api_key` is sent as CallHeaders.auth_token on every call (may be "" but not
 * NULL). `timeout_ms` bounds connect plus handshake (<= 0: no limit). Returns 0 and sets *conn,
 * or returns -1 and writes a message into errbuf (TOTE_ERRBUF_SIZE bytes), e.g. for a refused
 * connection or a GOAWAY(CONNECTION_LIMIT) at connect. */
int tote_connect(const char *host, int port, const char *api_key, int timeout_ms,
                 tote_conn **conn, char *errbuf);

/* Makes one unary call: HEADERS, then one MESSAGE with END_STREAM carrying `request` (len bytes,
 * may be 0), then waits for the response MESSAGE and the STATUS. `timeout_ms` > 0 is sent as the
 * call's deadline and also bounds the wait here (on expiry the call is CANCELled and the result
 * is DEADLINE_EXCEEDED); <= 0 means no deadline.
 *
 * Returns status->code. On OK, *response is a malloc'ed buffer (free it with free(); it may be
 * non-NULL with *response_len == 0) holding the serialized response message. Otherwise
 * *response is NULL, *response_len is 0 and status->message says why. */
int tote_unary(tote_conn *conn, const char *method, const uint8_t *request, size_t len,
               int timeout_ms, uint8_t **response, size_t *response_len, tote_status *status);

/* tote_unary with CallHeaders.idempotency_key set to `idempotency_key` (NULL or "": none). Every
 * command of the commerce services needs one (docs/PROTOCOL.md): a repeat of the same key on the
 * same method gets the first call's reply instead of acting twice. */
int tote_unary_idempotent(tote_conn *conn, const char *method, const char *idempotency_key, const uint8_t *request,
                          size_t len, int timeout_ms, uint8_t **response, size_t *response_len, tote_status *status);

/* 1 while the connection can take new calls; 0 once it failed (I/O error, protocol error, an
 * error GOAWAY) or the server announced a graceful shutdown. */
int tote_conn_usable(const tote_conn *conn);

/* 1 if the connection broke (transport failure or a protocol error), as opposed to a graceful
 * GOAWAY or an ordinary call error. Lets tools tell "connection failure" from "call failed". */
int tote_conn_failed(const tote_conn *conn);

/* Sends GOAWAY(NO_ERROR) if the connection is still up, closes the socket and frees `conn`.
 * NULL is allowed. */
void tote_close(tote_conn *conn);

#ifdef __cplusplus
}
#endif

#endif /* TOTE_CLIENT_H */
