/*
 * totectl.c: the controller session of libtotectl. See totectl.h for the API and
 * docs/AUTOMATION.md for the protocol rules it implements.
 *
 * Session states: OFFLINE -(attempt due)-> CONNECTING -(server SETTINGS)-> HELLO_SENT
 * -(BridgeWelcome)-> ONLINE; any failure (connect error, GOAWAY, STATUS, protocol violation,
 * heartbeat silence, connect timeout) -> OFFLINE with the next attempt after the backoff.
 * totectl_stop() -> STOPPED from anywhere.
 */
#define _POSIX_C_SOURCE 200809L

#include "totectl.h"

#include "ctl_state.h"
#include "ctl_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct totectl {
    /* configuration (owned copies) */
    char **hosts; /* the servers to rotate through (at least one) */
    int *ports;
    size_t server_count, server_at;
    char server_name[300]; /* "HOST:PORT" of hosts[server_at] */
    char *api_key, *controller_id, *warehouse_id, *firmware_version, *state_file, *method;
    char **capabilities, **zones;
    size_t capability_count, zone_count;
    int station_kind;
    int default_heartbeat_ms, missed_heartbeats, connect_timeout_ms, backoff_initial_ms, backoff_max_ms;
    totectl_command_fn on_command;
    totectl_state_fn on_state;
    totectl_log_fn on_log;
    void *user;

    /* session */
    totectl_session_state state;
    ctl_conn *conn;
    ctl_state st;
    int heartbeat_ms;
    uint32_t max_unacknowledged;
    char session_id[128];
    unsigned sessions;
    unsigned attempt;          /* consecutive failed attempts, for the backoff */
    int64_t next_attempt_ms;   /* OFFLINE: when to connect */
    int64_t connect_deadline_ms;
    int64_t next_heartbeat_ms;
    int64_t last_bridge_msg_ms; /* when the last BridgeMessage arrived (liveness) */
    int station_status;
    uint32_t queued_commands;
    unsigned rng;
    int dirty;            /* the state changed since the last save */
    int ack_pending;      /* a ControllerAck is due (after the next save) */
    uint64_t sent_report; /* highest report_sequence queued in this session */
    int in_io;          /* inside ctl_conn_io(): the connection must not be freed */
    int stop_requested; /* totectl_stop() was called from a callback */
};

/* ---- Small helpers ------------------------------------------------------------------------ */

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void logf_(totectl *c, const char *fmt, ...) {
    if (!c->on_log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->on_log(c, line, c->user);
}

static double rand01(totectl *c) {
    c->rng = c->rng * 1103515245u + 12345u;
    return (double)((c->rng >> 8) & 0xffffff) / (double)0x1000000;
}

static Tote__V1__Timestamp *wall_now(Tote__V1__Timestamp *ts) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    tote__v1__timestamp__init(ts);
    ts->unix_micros = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    return ts;
}

static void random_uuid(totectl *c, char out[37]) {
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof b)
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)(rand01(c) * 256);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void set_state(totectl *c, totectl_session_state s, const char *reason) {
    if (c->state == s) return;
    c->state = s;
    if (c->on_state) c->on_state(c, s, reason ? reason : "", c->user);
}

/* Writes the state file now (when configured). */
static void save_state(totectl *c) {
    c->dirty = 0;
    if (!c->state_file) return;
    if (ctl_state_save(&c->st, c->state_file) != 0)
        logf_(c, "error: cannot write state file %s: %s", c->state_file, strerror(errno));
}

/* Packs and queues one ControllerMessage on the call. */
static int send_msg(totectl *c, const Tote__V1__ControllerMessage *m) {
    if (!c->conn || !ctl_conn_call_open(c->conn)) return -1;
    size_t n = tote__v1__controller_message__get_packed_size(m);
    uint8_t small[512];
    uint8_t *p = n <= sizeof small ? small : malloc(n);
    if (!p) return -1;
    tote__v1__controller_message__pack(m, p);
    int rc = ctl_conn_send(c->conn, p, n);
    if (p != small) free(p);
    return rc;
}

static const ctl_conn_handler HANDLER;

/* ---- Session transitions ------------------------------------------------------------------ */

static void set_server_name(totectl *c) {
    const char *h = c->hosts[c->server_at];
    snprintf(c->server_name, sizeof c->server_name, strchr(h, ':') ? "[%s]:%d" : "%s:%d", h, c->ports[c->server_at]);
}

static void schedule_reconnect(totectl *c, const char *fmt, ...) {
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->conn) {
        ctl_conn_close(c->conn);
        c->conn = NULL;
    }
    if (c->state == TOTECTL_STOPPED) return;
    if (c->server_count > 1) { /* failover: the next attempt goes to the next bridge */
        c->server_at = (c->server_at + 1) % c->server_count;
        set_server_name(c);
    }
    int64_t delay = ctl_backoff_ms(c->attempt, c->backoff_initial_ms, c->backoff_max_ms, rand01(c));
    if (c->attempt < 30) c->attempt++;
    c->next_attempt_ms = ctl_now_ms() + delay;
    logf_(c, "%s %s; reconnecting in %lld ms", c->state == TOTECTL_ONLINE ? "session lost:" : "connect failed:", why,
          (long long)delay);
    set_state(c, TOTECTL_OFFLINE, why);
}

static void send_ack(totectl *c);

/* Makes what changed durable, then lets it out: saves the state file (once for any number of
 * commands and reports), then queues the unsent reports and the cumulative ack. An ack or a
 * report therefore never leaves before the state that backs it is on disk. */
static void commit(totectl *c) {
    if (c->dirty) save_state(c);
    if (c->state != TOTECTL_ONLINE || !c->conn) return;
    for (size_t i = 0; i < c->st.report_count; i++) {
        const ctl_report *r = &c->st.reports[i];
        if (r->report_sequence <= c->sent_report) continue;
        if (ctl_conn_send(c->conn, r->bytes, r->len) != 0) {
            logf_(c, "error: could not queue report %llu", (unsigned long long)r->report_sequence);
            break;
        }
        c->sent_report = r->report_sequence;
    }
    if (c->ack_pending) {
        send_ack(c);
        c->ack_pending = 0;
    }
}

/* Ends the session from a callback or a timer: inside ctl_conn_io() the connection is only
 * aborted (totectl_poll() then schedules the reconnect); outside it, at once. */
static void end_session(totectl *c, const char *why) {
    if (!c->conn) return;
    if (c->in_io)
        ctl_conn_abort(c->conn, why);
    else
        schedule_reconnect(c, "%s", why);
}

/* Runs the connection's I/O with callbacks; on failure schedules the reconnect (or stops). */
static void do_io(totectl *c, short revents) {
    if (!c->conn) return;
    c->in_io = 1;
    int rc = ctl_conn_io(c->conn, revents, &HANDLER, c);
    c->in_io = 0;
    if (c->stop_requested) {
        totectl_stop(c);
        return;
    }
    if (rc != 0 && c->conn) schedule_reconnect(c, "%s", ctl_conn_error(c->conn));
}

static void send_hello(totectl *c) {
    Tote__V1__ControllerHello h;
    tote__v1__controller_hello__init(&h);
    h.controller_id = c->controller_id;
    h.station_kind = (Tote__V1__StationKind)c->station_kind;
    h.capabilities = c->capabilities;
    h.n_capabilities = c->capability_count;
    h.last_sequence_seen = ctl_state_ack_sequence(&c->st);
    h.sdk_version = (char *)TOTECTL_SDK_VERSION;
    h.warehouse_id = c->warehouse_id;
    h.zones = c->zones;
    h.n_zones = c->zone_count;
    h.protocol_version = TOTECTL_PROTOCOL_VERSION;
    h.firmware_version = c->firmware_version;
    Tote__V1__ControllerMessage m;
    tote__v1__controller_message__init(&m);
    m.body_case = TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO;
    m.hello = &h;
    (void)send_msg(c, &m);
}

static void start_attempt(totectl *c) {
    char err[256];
    /* An ack owed to the previous session must not leak into this one: the bridge rejects acks
     * for sequences it did not send in the session. */
    c->ack_pending = 0;
    c->conn = ctl_conn_open(c->hosts[c->server_at], c->ports[c->server_at], c->api_key, err, sizeof err);
    if (!c->conn) {
        set_state(c, TOTECTL_CONNECTING, "");
        schedule_reconnect(c, "%s", err);
        return;
    }
    if (ctl_conn_start_call(c->conn, c->method, 0) != 0) {
        schedule_reconnect(c, "cannot open the call");
        return;
    }
    logf_(c, "connecting to %s as %s (last sequence seen %llu)", c->server_name, c->controller_id,
          (unsigned long long)ctl_state_ack_sequence(&c->st));
    send_hello(c); /* queued; goes out with the HEADERS once the server's SETTINGS grant credit */
    c->connect_deadline_ms = ctl_now_ms() + c->connect_timeout_ms;
    set_state(c, TOTECTL_CONNECTING, "");
}

static void send_ack(totectl *c) {
    Tote__V1__ControllerAck a;
    tote__v1__controller_ack__init(&a);
    a.sequence = ctl_state_ack_sequence(&c->st);
    Tote__V1__ControllerMessage m;
    tote__v1__controller_message__init(&m);
    m.body_case = TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK;
    m.ack = &a;
    (void)send_msg(c, &m);
}

static void send_heartbeat(totectl *c) {
    Tote__V1__Timestamp ts;
    Tote__V1__ControllerHeartbeat hb;
    tote__v1__controller_heartbeat__init(&hb);
    hb.sent_at = wall_now(&ts);
    hb.status = (Tote__V1__StationStatus)c->station_status;
    hb.queued_commands = c->queued_commands;
    Tote__V1__ControllerMessage m;
    tote__v1__controller_message__init(&m);
    m.body_case = TOTE__V1__CONTROLLER_MESSAGE__BODY_HEARTBEAT;
    m.heartbeat = &hb;
    (void)send_msg(c, &m);
    c->next_heartbeat_ms = ctl_now_ms() + c->heartbeat_ms;
}

static void on_welcome(totectl *c, const Tote__V1__BridgeWelcome *w) {
    int64_t interval_ms = w->heartbeat_interval ? w->heartbeat_interval->micros / 1000 : 0;
    c->heartbeat_ms = interval_ms > 0 ? (int)(interval_ms > 3600000 ? 3600000 : interval_ms) : c->default_heartbeat_ms;
    c->max_unacknowledged = w->max_unacknowledged;
    ctl_copy_text(c->session_id, sizeof c->session_id, w->session_id ? w->session_id : "",
                  w->session_id ? strlen(w->session_id) : 0);
    c->sessions++;
    c->attempt = 0;
    if (ctl_state_ack_reports(&c->st, w->last_report_sequence_recorded) > 0) c->dirty = 1;
    if (w->last_report_sequence_recorded > c->st.last_report_sequence) {
        /* The bridge has recorded more than we remember (our storage was lost): continue after it. */
        logf_(c, "report counter %llu is behind the bridge's %llu: continuing from %llu",
              (unsigned long long)c->st.last_report_sequence, (unsigned long long)w->last_report_sequence_recorded,
              (unsigned long long)w->last_report_sequence_recorded + 1);
        c->st.last_report_sequence = w->last_report_sequence_recorded;
        c->dirty = 1;
    }
    /* Every report the bridge has not recorded goes out again, in order (commit() sends them). */
    c->sent_report = w->last_report_sequence_recorded;
    logf_(c, "online: session %s, resume from sequence %llu, heartbeat %d ms, window %u, %zu report(s) to resend",
          c->session_id, (unsigned long long)w->resume_from_sequence, c->heartbeat_ms, (unsigned)w->max_unacknowledged,
          c->st.report_count);
    set_state(c, TOTECTL_ONLINE, "");
    send_heartbeat(c);
}

static void on_command_msg(totectl *c, const Tote__V1__BridgeCommand *cmd) {
    const char *id = cmd->command_id ? cmd->command_id : "";
    switch (ctl_state_classify(&c->st, id, cmd->sequence)) {
    case CTL_COMMAND_INVALID:
        logf_(c, "dropped an invalid command (id \"%.64s\", sequence %llu)", id, (unsigned long long)cmd->sequence);
        return;
    case CTL_COMMAND_DUPLICATE:
        logf_(c, "duplicate command %s (sequence %llu): re-acknowledged, not run again", id,
              (unsigned long long)cmd->sequence);
        c->ack_pending = 1;
        return;
    case CTL_COMMAND_NEW:
        break;
    }
    if (c->on_command) c->on_command(c, cmd, c->user);
    if (c->state == TOTECTL_STOPPED) return;
    ctl_state_record_command(&c->st, id, cmd->sequence);
    c->dirty = 1; /* commit() saves it before the ack goes out */
    c->ack_pending = 1;
}

/* ---- Wire callbacks ----------------------------------------------------------------------- */

static void w_ready(void *user) {
    totectl *c = user;
    set_state(c, TOTECTL_HELLO_SENT, "");
}

static void w_message(void *user, const uint8_t *p, size_t n) {
    totectl *c = user;
    if (c->state != TOTECTL_HELLO_SENT && c->state != TOTECTL_ONLINE) return;
    c->last_bridge_msg_ms = ctl_now_ms();
    Tote__V1__BridgeMessage *m = tote__v1__bridge_message__unpack(NULL, n, p);
    if (!m) {
        logf_(c, "error: undecodable BridgeMessage (%zu bytes)", n);
        totectl_disconnect(c, "undecodable BridgeMessage");
        return;
    }
    if (c->state == TOTECTL_HELLO_SENT) {
        if (m->body_case == TOTE__V1__BRIDGE_MESSAGE__BODY_WELCOME)
            on_welcome(c, m->welcome);
        else
            totectl_disconnect(c, "protocol error: the bridge's first message is not a welcome");
    } else {
        switch (m->body_case) {
        case TOTE__V1__BRIDGE_MESSAGE__BODY_COMMAND:
            on_command_msg(c, m->command);
            break;
        case TOTE__V1__BRIDGE_MESSAGE__BODY_HEARTBEAT:
            break; /* liveness only: the receive time is tracked by the connection */
        case TOTE__V1__BRIDGE_MESSAGE__BODY_ACK:
            if (ctl_state_ack_reports(&c->st, m->ack->report_sequence) > 0) c->dirty = 1;
            break;
        case TOTE__V1__BRIDGE_MESSAGE__BODY_WELCOME:
            totectl_disconnect(c, "protocol error: a second welcome in one session");
            break;
        default:
            logf_(c, "ignored a BridgeMessage of an unknown kind");
            break;
        }
    }
    tote__v1__bridge_message__free_unpacked(m, NULL);
}

static void w_status(void *user, int code, const char *message) {
    totectl *c = user;
    char why[400];
    snprintf(why, sizeof why, "the bridge ended the session: %s: %s", ctl_status_name(code), message);
    end_session(c, why);
}

static void w_goaway(void *user, uint32_t code, const char *text) {
    totectl *c = user;
    logf_(c, "server sent GOAWAY %s: %s", ctl_goaway_code_name(code), text);
}

static const ctl_conn_handler HANDLER = {w_ready, w_message, w_status, w_goaway};

/* ---- Public API --------------------------------------------------------------------------- */

void totectl_config_init(totectl_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 7700;
    cfg->heartbeat_interval_ms = 2000;
    cfg->missed_heartbeats = 3;
    cfg->connect_timeout_ms = 10000;
    cfg->backoff_initial_ms = 100;
    cfg->backoff_max_ms = 5000;
    cfg->method = TOTECTL_METHOD;
}

static char **dup_list(const char *const *src, size_t n) {
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) out[i] = dup_or_empty(src[i]);
    return out;
}

/* Splits "HOST:PORT" ("[V6]:PORT" for IPv6) into a new host string and a port; 0 or -1. */
static int parse_server(const char *s, char **host, int *port) {
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || !colon[1]) return -1;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535) return -1;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']') return -1;
        h++;
        n -= 2;
    } else if (memchr(h, ':', n)) {
        return -1; /* an IPv6 address needs brackets */
    }
    *host = strndup(h, n);
    *port = (int)p;
    return *host ? 0 : -1;
}

totectl *totectl_new(const totectl_config *cfg, char *errbuf, size_t cap) {
    int has_servers = cfg && cfg->servers && cfg->server_count > 0;
    if (!cfg || (!has_servers && (!cfg->host || !*cfg->host || cfg->port < 1 || cfg->port > 65535)) ||
        !cfg->controller_id || !*cfg->controller_id || !cfg->api_key) {
        snprintf(errbuf, cap, "totectl_new: host and port (1-65535) or servers, api_key and controller_id are required");
        return NULL;
    }
    size_t idlen = strlen(cfg->controller_id);
    int id_ok = idlen >= 1 && idlen <= 64;
    for (size_t i = 0; id_ok && i < idlen; i++) {
        char ch = cfg->controller_id[i];
        id_ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                ch == '_' || ch == '-';
    }
    if (!id_ok) {
        snprintf(errbuf, cap, "totectl_new: controller_id must be 1-64 characters of [A-Za-z0-9._-]");
        return NULL;
    }
    if (cfg->station_kind != TOTE__V1__STATION_KIND__STATION_KIND_PICK &&
        cfg->station_kind != TOTE__V1__STATION_KIND__STATION_KIND_PACK) {
        snprintf(errbuf, cap, "totectl_new: station_kind must be PICK or PACK");
        return NULL;
    }
    totectl *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errbuf, cap, "out of memory");
        return NULL;
    }
    ctl_state_init(&c->st);
    c->server_count = has_servers ? cfg->server_count : 1;
    c->hosts = calloc(c->server_count, sizeof *c->hosts);
    c->ports = calloc(c->server_count, sizeof *c->ports);
    if (!c->hosts || !c->ports) {
        snprintf(errbuf, cap, "out of memory");
        totectl_free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->server_count; i++) {
        if (!has_servers) {
            c->hosts[i] = strdup(cfg->host);
            c->ports[i] = cfg->port;
        } else if (parse_server(cfg->servers[i], &c->hosts[i], &c->ports[i]) != 0) {
            snprintf(errbuf, cap, "totectl_new: servers[%zu] '%s' is not HOST:PORT (port 1-65535, IPv6 in brackets)", i,
                     cfg->servers[i] ? cfg->servers[i] : "(null)");
            totectl_free(c);
            return NULL;
        }
        if (!c->hosts[i]) {
            snprintf(errbuf, cap, "out of memory");
            totectl_free(c);
            return NULL;
        }
    }
    set_server_name(c);
    c->api_key = dup_or_empty(cfg->api_key);
    c->controller_id = dup_or_empty(cfg->controller_id);
    c->warehouse_id = dup_or_empty(cfg->warehouse_id);
    c->firmware_version = dup_or_empty(cfg->firmware_version);
    c->method = dup_or_empty(cfg->method ? cfg->method : TOTECTL_METHOD);
    c->state_file = cfg->state_file ? strdup(cfg->state_file) : NULL;
    c->capabilities = dup_list(cfg->capabilities, cfg->capability_count);
    c->capability_count = cfg->capability_count;
    c->zones = dup_list(cfg->zones, cfg->zone_count);
    c->zone_count = cfg->zone_count;
    c->station_kind = cfg->station_kind;
    c->default_heartbeat_ms = cfg->heartbeat_interval_ms > 0 ? cfg->heartbeat_interval_ms : 2000;
    c->heartbeat_ms = c->default_heartbeat_ms;
    c->missed_heartbeats = cfg->missed_heartbeats > 0 ? cfg->missed_heartbeats : 3;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    c->backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 100;
    c->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 5000;
    c->on_command = cfg->on_command;
    c->on_state = cfg->on_state;
    c->on_log = cfg->on_log;
    c->user = cfg->user;
    c->station_status = TOTE__V1__STATION_STATUS__STATION_STATUS_IDLE;
    c->state = TOTECTL_OFFLINE;
    c->next_attempt_ms = ctl_now_ms();
    c->rng = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)c;
    if (!c->api_key || !c->controller_id || !c->warehouse_id || !c->firmware_version || !c->method ||
        !c->capabilities || !c->zones || (cfg->state_file && !c->state_file)) {
        snprintf(errbuf, cap, "out of memory");
        totectl_free(c);
        return NULL;
    }
    c->st.last_sequence_seen = cfg->initial_last_sequence_seen;
    c->st.last_report_sequence = cfg->initial_last_report_sequence;
    if (c->state_file) {
        char err[300];
        int rc = ctl_state_load(&c->st, c->state_file, err, sizeof err);
        if (rc < 0) {
            snprintf(errbuf, cap, "state file: %s", err);
            totectl_free(c);
            return NULL;
        }
    }
    return c;
}

int totectl_poll(totectl *c, int max_wait_ms) {
    if (c->state == TOTECTL_STOPPED) return -1;
    int64_t now = ctl_now_ms();
    if (!c->conn && now >= c->next_attempt_ms) start_attempt(c);

    /* When the next timer is due. */
    int64_t due;
    if (!c->conn)
        due = c->next_attempt_ms;
    else if (c->state == TOTECTL_ONLINE) {
        int64_t dead = c->last_bridge_msg_ms + (int64_t)c->heartbeat_ms * c->missed_heartbeats;
        due = c->next_heartbeat_ms < dead ? c->next_heartbeat_ms : dead;
    } else
        due = c->connect_deadline_ms;
    int64_t wait = due - ctl_now_ms();
    if (wait < 0) wait = 0;
    if (max_wait_ms >= 0 && wait > max_wait_ms) wait = max_wait_ms;

    if (c->conn) {
        struct pollfd p = {.fd = ctl_conn_fd(c->conn), .events = ctl_conn_events(c->conn), .revents = 0};
        int n = poll(&p, 1, (int)wait);
        if (n < 0 && errno != EINTR) p.revents = POLLERR;
        if (n <= 0) p.revents = 0;
        do_io(c, p.revents);
    } else if (wait > 0) {
        (void)poll(NULL, 0, (int)wait);
    }
    if (c->state == TOTECTL_STOPPED) return -1;

    /* Timers. */
    now = ctl_now_ms();
    if (c->conn && c->state != TOTECTL_ONLINE && now >= c->connect_deadline_ms)
        schedule_reconnect(c, "no welcome within %d ms", c->connect_timeout_ms);
    if (c->conn && c->state == TOTECTL_ONLINE) {
        int64_t silent = now - c->last_bridge_msg_ms;
        if (silent >= (int64_t)c->heartbeat_ms * c->missed_heartbeats) {
            schedule_reconnect(c, "broken: no message from the bridge for %lld ms (%d heartbeats)", (long long)silent,
                               c->missed_heartbeats);
        } else if (now >= c->next_heartbeat_ms) {
            send_heartbeat(c);
        }
    }
    /* Save, then push out whatever the callbacks and timers queued. */
    commit(c);
    do_io(c, 0);
    return c->state == TOTECTL_STOPPED ? -1 : 0;
}

void totectl_run(totectl *c, volatile int *stop) {
    while (!(stop && *stop) && totectl_poll(c, 200) == 0) {
    }
    totectl_stop(c);
}

void totectl_stop(totectl *c) {
    if (!c || c->state == TOTECTL_STOPPED) return;
    if (c->in_io) {
        c->stop_requested = 1;
        if (c->conn) ctl_conn_abort(c->conn, "controller stopping");
        return;
    }
    c->stop_requested = 0;
    commit(c);
    if (c->conn) {
        if (ctl_conn_call_open(c->conn)) (void)ctl_conn_half_close(c->conn);
        c->in_io = 1;
        (void)ctl_conn_io(c->conn, 0, &HANDLER, c);
        c->in_io = 0;
        ctl_conn_close(c->conn);
        c->conn = NULL;
    }
    save_state(c);
    logf_(c, "stopped (last sequence seen %llu, %zu unacknowledged report(s) kept)",
          (unsigned long long)ctl_state_ack_sequence(&c->st), c->st.report_count);
    set_state(c, TOTECTL_STOPPED, "stopped");
}

void totectl_free(totectl *c) {
    if (!c) return;
    if (c->state != TOTECTL_STOPPED && c->api_key) totectl_stop(c);
    if (c->conn) ctl_conn_close(c->conn);
    for (size_t i = 0; c->capabilities && i < c->capability_count; i++) free(c->capabilities[i]);
    for (size_t i = 0; c->zones && i < c->zone_count; i++) free(c->zones[i]);
    free(c->capabilities);
    free(c->zones);
    for (size_t i = 0; c->hosts && i < c->server_count; i++) free(c->hosts[i]);
    free(c->hosts);
    free(c->ports);
    free(c->api_key);
    free(c->controller_id);
    free(c->warehouse_id);
    free(c->firmware_version);
    free(c->state_file);
    free(c->method);
    ctl_state_free(&c->st);
    free(c);
}

/* Stores a report (and sends it when online). `m` gets its report_sequence set by `set_seq`. */
static int submit_report(totectl *c, Tote__V1__ControllerMessage *m, uint64_t seq) {
    size_t n = tote__v1__controller_message__get_packed_size(m);
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return -1;
    tote__v1__controller_message__pack(m, p);
    if (ctl_state_add_report(&c->st, seq, p, n) != 0) {
        free(p);
        logf_(c, "error: too many unacknowledged reports; report %llu dropped", (unsigned long long)seq);
        return -1;
    }
    free(p);
    c->dirty = 1;
    if (!c->in_io) commit(c); /* inside a callback, totectl_poll() commits once for all */
    return 0;
}

int totectl_report_state(totectl *c, const totectl_action_report *r) {
    if (!c || !r || !r->command_id || c->state == TOTECTL_STOPPED) return -1;
    Tote__V1__Timestamp ts;
    Tote__V1__ActionState a;
    tote__v1__action_state__init(&a);
    a.report_sequence = ctl_state_next_report_sequence(&c->st);
    a.command_id = (char *)r->command_id;
    a.sequence = r->sequence;
    a.task_id = (char *)(r->task_id ? r->task_id : "");
    a.status = (Tote__V1__ActionStatus)r->status;
    a.failure_code = (char *)(r->failure_code ? r->failure_code : "");
    a.failure_text = (char *)(r->failure_text ? r->failure_text : "");
    a.retriable = r->retriable ? 1 : 0;
    a.at = wall_now(&ts);
    Tote__V1__PickedQuantity *items = NULL, **ptrs = NULL;
    if (r->picked_count > 0) {
        items = calloc(r->picked_count, sizeof *items);
        ptrs = calloc(r->picked_count, sizeof *ptrs);
        if (!items || !ptrs) {
            free(items);
            free(ptrs);
            return -1;
        }
        for (size_t i = 0; i < r->picked_count; i++) {
            tote__v1__picked_quantity__init(&items[i]);
            items[i].line_id = (char *)(r->picked[i].line_id ? r->picked[i].line_id : "");
            items[i].sku = (char *)(r->picked[i].sku ? r->picked[i].sku : "");
            items[i].location = (char *)(r->picked[i].location ? r->picked[i].location : "");
            items[i].quantity = r->picked[i].quantity;
            ptrs[i] = &items[i];
        }
        a.picked = ptrs;
        a.n_picked = r->picked_count;
    }
    Tote__V1__PackResult pr;
    if (r->has_pack_result) {
        tote__v1__pack_result__init(&pr);
        pr.box_used = (char *)(r->box_used ? r->box_used : "");
        pr.weight_grams = r->weight_grams;
        pr.parcel_count = r->parcel_count;
        a.packed = &pr;
    }
    Tote__V1__ControllerMessage m;
    tote__v1__controller_message__init(&m);
    m.body_case = TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE;
    m.action_state = &a;
    int rc = submit_report(c, &m, a.report_sequence);
    free(items);
    free(ptrs);
    return rc;
}

int totectl_report_exception(totectl *c, const totectl_exception *e) {
    if (!c || !e || c->state == TOTECTL_STOPPED) return -1;
    char id[37];
    random_uuid(c, id);
    Tote__V1__Timestamp ts;
    Tote__V1__ExceptionReport x;
    tote__v1__exception_report__init(&x);
    x.report_sequence = ctl_state_next_report_sequence(&c->st);
    x.exception_id = id;
    x.kind = (Tote__V1__ExceptionKind)e->kind;
    x.command_id = (char *)(e->command_id ? e->command_id : "");
    x.task_id = (char *)(e->task_id ? e->task_id : "");
    x.sku = (char *)(e->sku ? e->sku : "");
    x.location = (char *)(e->location ? e->location : "");
    x.quantity_expected = e->quantity_expected;
    x.quantity_found = e->quantity_found;
    x.text = (char *)(e->text ? e->text : "");
    x.blocking = e->blocking ? 1 : 0;
    x.at = wall_now(&ts);
    Tote__V1__ControllerMessage m;
    tote__v1__controller_message__init(&m);
    m.body_case = TOTE__V1__CONTROLLER_MESSAGE__BODY_EXCEPTION_REPORT;
    m.exception_report = &x;
    return submit_report(c, &m, x.report_sequence);
}

void totectl_set_station_status(totectl *c, int status, uint32_t queued_commands) {
    c->station_status = status;
    c->queued_commands = queued_commands;
}

void totectl_disconnect(totectl *c, const char *reason) {
    if (!c->conn || c->state == TOTECTL_STOPPED) return;
    end_session(c, reason ? reason : "disconnected");
}

totectl_session_state totectl_state(const totectl *c) { return c->state; }

const char *totectl_state_name(totectl_session_state s) {
    switch (s) {
    case TOTECTL_OFFLINE: return "offline";
    case TOTECTL_CONNECTING: return "connecting";
    case TOTECTL_HELLO_SENT: return "hello-sent";
    case TOTECTL_ONLINE: return "online";
    case TOTECTL_STOPPED: return "stopped";
    }
    return "unknown";
}

uint64_t totectl_last_sequence_seen(const totectl *c) { return ctl_state_ack_sequence(&c->st); }
uint64_t totectl_last_report_sequence(const totectl *c) { return c->st.last_report_sequence; }
size_t totectl_pending_reports(const totectl *c) { return c->st.report_count; }
const char *totectl_server(const totectl *c) { return c->server_name; }
const char *totectl_session_id(const totectl *c) { return c->session_id; }
unsigned totectl_sessions(const totectl *c) { return c->sessions; }
