/*
 * cli_common.h: option parsing shared by tote-health and tote-echo (header-only, static).
 *
 * Exit codes of both tools: 0 success, 1 the call worked but the answer was not the good one
 * (e.g. NOT_SERVING, echo mismatch), 2 the call failed with a status, 3 connection failure,
 * 64 usage error.
 */
#ifndef TOTE_CLI_COMMON_H
#define TOTE_CLI_COMMON_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_NOT_GOOD 1
#define EXIT_RPC_ERROR 2
#define EXIT_CONNECTION 3
#define EXIT_USAGE 64

typedef struct {
    const char *host;
    int port;
    const char *key; /* NULL: not given */
    int timeout_ms;
} cli_connection_options;

static inline void cli_defaults(cli_connection_options *o) {
    o->host = "127.0.0.1";
    o->port = 7700;
    o->key = NULL;
    o->timeout_ms = 5000;
}

/* Parses a decimal integer in [min, max]; returns 0 on success. */
static inline int cli_parse_int(const char *text, long min, long max, long *out) {
    if (!text || !*text) return -1;
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Takes the value of option argv[*i] (either "--opt value" or "--opt=value"). Returns NULL and
 * prints an error when the value is missing. `name` is the option without its value. */
static inline const char *cli_value(int argc, char **argv, int *i, const char *name) {
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (arg[n] == '=') return arg + n + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

/* Whether argv[i] is option `name` (exactly, or as "name=value"). */
static inline int cli_is(const char *arg, const char *name) {
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* Handles --host, --port, --key, --timeout-ms. Returns 1 if argv[*i] was one of them, 0 if not,
 * -1 on a bad value (message printed). */
static inline int cli_connection_option(int argc, char **argv, int *i, cli_connection_options *o) {
    const char *arg = argv[*i];
    const char *v;
    long n;
    if (cli_is(arg, "--host")) {
        if (!(v = cli_value(argc, argv, i, "--host"))) return -1;
        if (!*v) {
            fprintf(stderr, "error: --host must not be empty\n");
            return -1;
        }
        o->host = v;
        return 1;
    }
    if (cli_is(arg, "--port")) {
        if (!(v = cli_value(argc, argv, i, "--port"))) return -1;
        if (cli_parse_int(v, 1, 65535, &n) != 0) {
            fprintf(stderr, "error: --port must be a number from 1 to 65535, not '%s'\n", v);
            return -1;
        }
        o->port = (int)n;
        return 1;
    }
    if (cli_is(arg, "--key")) {
        if (!(v = cli_value(argc, argv, i, "--key"))) return -1;
        o->key = v;
        return 1;
    }
    if (cli_is(arg, "--timeout-ms")) {
        if (!(v = cli_value(argc, argv, i, "--timeout-ms"))) return -1;
        if (cli_parse_int(v, 0, INT_MAX / 1000, &n) != 0) {
            fprintf(stderr, "error: --timeout-ms must be a number of milliseconds (0 = none), not '%s'\n", v);
            return -1;
        }
        o->timeout_ms = (int)n;
        return 1;
    }
    return 0;
}

/* Fills the key from TOTE_API_KEY when --key was not given; -1 (message printed) if neither. */
static inline int cli_resolve_key(cli_connection_options *o) {
    if (o->key) return 0;
    const char *env = getenv("TOTE_API_KEY");
    if (env) {
        o->key = env;
        return 0;
    }
    fprintf(stderr, "error: no API key: pass --key KEY or set TOTE_API_KEY\n");
    return -1;
}

/* Prints bytes from the server as text, replacing control characters (except none) with '?'. */
static inline void cli_print_text(FILE *out, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) fputc((p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i], out);
}

#endif /* TOTE_CLI_COMMON_H */
