/*
 * tote-health: calls tote.v1.Health/Check and prints the answer.
 *
 *   tote-health [--host H] [--port P] [--key KEY] [--service NAME] [--timeout-ms N]
 *
 * The API key comes from --key or the TOTE_API_KEY environment variable. Prints e.g.
 * "SERVING (server tote 0.1.0)". Exit: 0 SERVING, 1 any other serving status, 2 the call failed
 * (the status is printed to stderr as "error: CODE: message"), 3 connection failure, 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "cli_common.h"
#include "tote_client.h"

#include "tote/v1/health.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: tote-health [--host H] [--port P] [--key KEY] [--service NAME] [--timeout-ms N]\n"
            "  --host H          server host (default 127.0.0.1)\n"
            "  --port P          server port (default 7700)\n"
            "  --key KEY         API key (default: $TOTE_API_KEY)\n"
            "  --service NAME    fully qualified service to check, e.g. tote.v1.Diagnostics\n"
            "                    (default: the whole server)\n"
            "  --timeout-ms N    connect timeout and call deadline in ms (default 5000; 0 = none)\n"
            "exit: 0 SERVING, 1 other serving status, 2 call failed, 3 connection failure, 64 usage\n");
}

static const char *serving_status_name(int status) {
    switch (status) {
    case TOTE__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_UNSPECIFIED: return "UNSPECIFIED";
    case TOTE__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING: return "SERVING";
    case TOTE__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_NOT_SERVING: return "NOT_SERVING";
    case TOTE__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
    default: return NULL;
    }
}

int main(int argc, char **argv) {
    cli_connection_options opt;
    cli_defaults(&opt);
    const char *service = "";
    for (int i = 1; i < argc; i++) {
        int r = cli_connection_option(argc, argv, &i, &opt);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (cli_is(argv[i], "--service")) {
            if (!(service = cli_value(argc, argv, &i, "--service"))) return EXIT_USAGE;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "error: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (cli_resolve_key(&opt) != 0) return EXIT_USAGE;

    Tote__V1__HealthCheckRequest request = TOTE__V1__HEALTH_CHECK_REQUEST__INIT;
    request.service = (char *)service;
    size_t request_len = tote__v1__health_check_request__get_packed_size(&request);
    uint8_t *request_bytes = malloc(request_len ? request_len : 1);
    if (!request_bytes) {
        fprintf(stderr, "error: out of memory\n");
        return EXIT_RPC_ERROR;
    }
    tote__v1__health_check_request__pack(&request, request_bytes);

    char err[TOTE_ERRBUF_SIZE];
    tote_conn *conn = NULL;
    if (tote_connect(opt.host, opt.port, opt.key, opt.timeout_ms, &conn, err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        free(request_bytes);
        return EXIT_CONNECTION;
    }

    uint8_t *response = NULL;
    size_t response_len = 0;
    tote_status status;
    int code = tote_unary(conn, "tote.v1.Health/Check", request_bytes, request_len, opt.timeout_ms, &response,
                          &response_len, &status);
    free(request_bytes);
    if (code != TOTE_OK) {
        fprintf(stderr, "error: %s: %s\n", tote_status_code_name(code), status.message);
        int failed = tote_conn_failed(conn);
        tote_close(conn);
        return failed ? EXIT_CONNECTION : EXIT_RPC_ERROR;
    }
    tote_close(conn);

    Tote__V1__HealthCheckResponse *reply = tote__v1__health_check_response__unpack(NULL, response_len, response);
    free(response);
    if (!reply) {
        fprintf(stderr, "error: INTERNAL: the server's HealthCheckResponse could not be decoded\n");
        return EXIT_RPC_ERROR;
    }
    const char *name = serving_status_name((int)reply->status);
    char other[32];
    if (!name) {
        snprintf(other, sizeof other, "STATUS_%d", (int)reply->status);
        name = other;
    }
    fputs(name, stdout);
    const char *version = reply->server_version ? reply->server_version : "";
    if (*version) {
        fputs(" (server ", stdout);
        cli_print_text(stdout, version, strlen(version));
        fputc(')', stdout);
    }
    fputc('\n', stdout);
    int serving = reply->status == TOTE__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING_STATUS_SERVING;
    tote__v1__health_check_response__free_unpacked(reply, NULL);
    return serving ? 0 : EXIT_NOT_GOOD;
}
