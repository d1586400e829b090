/*
 * totectl.h: libtotectl, the C SDK for Tote warehouse controllers (pick and pack stations).
 *
 * A controller keeps one session with the Tote automation bridge: the bidirectional call
 * `tote.v1.Automation/Connect` over the Tote wire protocol (docs/PROTOCOL.md), carrying
 * tote.v1.ControllerMessage up and tote.v1.BridgeMessage down (Protos/tote/v1/automation.proto,
 * rules in docs/AUTOMATION.md). The library does, for the application:
 *
 *   - connect (non-blocking), handshake, open the call with the controller API key;
 *   - send ControllerHello (controller id, station kind, capabilities, zones, last sequence seen)
 *     and wait for BridgeWelcome;
 *   - invoke on_command once per NEW command; a redelivered command (same command_id, or a
 *     sequence at or below the last one received) is NOT passed on: it is acknowledged again;
 *   - record every received command in the state file before acknowledging it (ControllerAck
 *     is cumulative: "every command up to this sequence is durably received");
 *   - number reports (ActionState, ExceptionReport) with report_sequence, keep them (in the state
 *     file too) until the bridge's BridgeAck covers them, and resend the unacknowledged ones
 *     after every reconnect (the bridge treats repeats as no-ops);
 *   - heartbeats both ways at the interval the bridge announces; the session is declared broken
 *     when nothing arrives for `missed_heartbeats` intervals; PINGs answered;
 *   - reconnect with exponential backoff and jitter, resuming from the last sequence seen.
 *
 * Single-threaded: drive it with totectl_poll() (or totectl_run()) from one thread; every
 * callback runs inside totectl_poll(). Functions may be called from callbacks, except
 * totectl_free(). Nothing is thread-safe.
 *
 *     totectl_config cfg;
 *     totectl_config_init(&cfg);
 *     cfg.host = "127.0.0.1"; cfg.port = 7700; cfg.api_key = key;
 *     cfg.controller_id = "pick-01"; cfg.station_kind = TOTE__V1__STATION_KIND__STATION_KIND_PICK;
 *     cfg.state_file = "/var/lib/pick-01.state"; cfg.on_command = handle; cfg.user = app;
 *     char err[256];
 *     totectl *ctl = totectl_new(&cfg, err, sizeof err);
 *     while (!stopping) totectl_poll(ctl, 100);       // do the station's own work in between
 *     totectl_free(ctl);
 */
#ifndef TOTECTL_H
#define TOTECTL_H

#include <stddef.h>
#include <stdint.h>

#include "tote/v1/automation.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The SDK version sent as ControllerHello.sdk_version. */
#define TOTECTL_SDK_VERSION "tote-controller-sdk 0.1.0"
/* The controller protocol version this SDK speaks. */
#define TOTECTL_PROTOCOL_VERSION 1u
/* The bridge method. */
#define TOTECTL_METHOD "tote.v1.Automation/Connect"

/* One controller session (with its reconnects). */
typedef struct totectl totectl;

/* Where the session is. */
typedef enum totectl_session_state {
    /* Not connected; waiting for the next attempt (backoff). */
    TOTECTL_OFFLINE = 0,
    /* TCP connect and wire handshake in progress; hello queued. */
    TOTECTL_CONNECTING = 1,
    /* Handshake done, hello sent; waiting for BridgeWelcome. */
    TOTECTL_HELLO_SENT = 2,
    /* Welcomed: commands flow, heartbeats run. */
    TOTECTL_ONLINE = 3,
    /* totectl_stop() was called; nothing more happens. */
    TOTECTL_STOPPED = 4
} totectl_session_state;

/* A received command. `cmd` (the decoded BridgeCommand) is valid during the callback only: copy
 * what you keep. The library has not yet acknowledged it; it does so when the callback returns. */
typedef void (*totectl_command_fn)(totectl *ctl, const Tote__V1__BridgeCommand *cmd, void *user);
/* The session changed state; `reason` says why (e.g. the error that ended a session). */
typedef void (*totectl_state_fn)(totectl *ctl, totectl_session_state state, const char *reason, void *user);
/* One human-readable log line (no newline) about what the library did. */
typedef void (*totectl_log_fn)(totectl *ctl, const char *line, void *user);

/* Settings of a controller. Initialize with totectl_config_init(), then set at least host, port,
 * api_key, controller_id, station_kind and on_command. Strings are copied by totectl_new(). */
typedef struct totectl_config {
    const char *host;          /* Tote server (the bridge's listener) */
    int port;                  /* default 7700 */
    /* Failover: "HOST:PORT" addresses of every bridge that may be the active one ("[v6]:PORT" for
     * IPv6), server_count entries. When set they replace host/port: the SDK connects to the first
     * and moves on to the next (cyclically) after every failed attempt or lost session, e.g. a
     * standby's STATUS UNAVAILABLE or the active bridge dying. */
    const char *const *servers;
    size_t server_count;
    const char *api_key;       /* a key with the controller role */
    const char *controller_id; /* the station's registered id: 1-64 of [A-Za-z0-9._-] */
    int station_kind;          /* Tote__V1__StationKind: PICK or PACK */
    const char *const *capabilities; /* e.g. "pick.multi_line"; capability_count entries */
    size_t capability_count;
    const char *const *zones; /* location prefixes a pick station serves; empty = all */
    size_t zone_count;
    const char *warehouse_id;     /* may be NULL */
    const char *firmware_version; /* may be NULL */
    /* Where the durable state lives (last sequence seen, recent command ids, report counter,
     * unacknowledged reports). NULL = memory only: then start from initial_last_sequence_seen
     * and initial_last_report_sequence, persisted by the caller (totectl_last_sequence_seen()). */
    const char *state_file;
    uint64_t initial_last_sequence_seen;
    uint64_t initial_last_report_sequence;
    int heartbeat_interval_ms; /* until the welcome sets it; default 2000 */
    int missed_heartbeats;     /* silence of this many intervals breaks the session; default 3 */
    int connect_timeout_ms;    /* connect + handshake + welcome; default 10000 */
    int backoff_initial_ms;    /* first reconnect delay (doubling, +-20 % jitter); default 100 */
    int backoff_max_ms;        /* longest reconnect delay; default 5000 */
    const char *method;        /* default TOTECTL_METHOD */
    totectl_command_fn on_command;
    totectl_state_fn on_state; /* may be NULL */
    totectl_log_fn on_log;     /* may be NULL */
    void *user;                /* passed to the callbacks */
} totectl_config;

/* Units picked for one line (for ActionState.picked). */
typedef struct totectl_picked {
    const char *line_id;
    const char *sku;
    const char *location;
    uint32_t quantity;
} totectl_picked;

/* An ActionState to report about a command. */
typedef struct totectl_action_report {
    const char *command_id; /* BridgeCommand.command_id */
    uint64_t sequence;      /* BridgeCommand.sequence */
    const char *task_id;    /* the task of the command */
    int status;             /* Tote__V1__ActionStatus */
    const char *failure_code;     /* FAILED: e.g. "LOCATION_EMPTY" */
    const char *failure_text;     /* FAILED: for people */
    int retriable;                /* FAILED: may succeed if dispatched again */
    const totectl_picked *picked; /* pick tasks: per line; picked_count entries */
    size_t picked_count;
    int has_pack_result; /* pack tasks, FINISHED: the fields below are sent */
    const char *box_used;
    uint32_t weight_grams;
    uint32_t parcel_count;
} totectl_action_report;

/* An ExceptionReport (short pick, jam, ...). The library assigns exception_id (a UUID). */
typedef struct totectl_exception {
    int kind;               /* Tote__V1__ExceptionKind */
    const char *command_id; /* NULL/"" for a station-wide problem */
    const char *task_id;
    const char *sku;
    const char *location;
    uint32_t quantity_expected;
    uint32_t quantity_found;
    const char *text;
    int blocking; /* the station stopped until someone intervenes */
} totectl_exception;

/* Fills `cfg` with the defaults (and zeroes everything else). */
void totectl_config_init(totectl_config *cfg);

/* Creates a controller and loads its state file. Does not connect yet: the first
 * totectl_poll() does. Returns NULL with errbuf filled on a bad config or an unreadable state
 * file (a missing one is fine: a fresh controller). */
totectl *totectl_new(const totectl_config *cfg, char *errbuf, size_t cap);

/* Runs the session for at most max_wait_ms (0 = do what is due, do not wait): connects or
 * reconnects when due, performs socket I/O, dispatches callbacks, sends heartbeats, detects a
 * dead bridge. Returns 0, or -1 once stopped. A signal interrupts the wait early. */
int totectl_poll(totectl *ctl, int max_wait_ms);

/* Calls totectl_poll() until *stop becomes non-zero (e.g. set by a SIGTERM handler) or
 * totectl_stop() is called; then stops. stop may be NULL. */
void totectl_run(totectl *ctl, volatile int *stop);

/* Ends the session for good: flushes what is queued (best effort), sends GOAWAY, closes, saves
 * the state. Later reports are still kept in the state file. */
void totectl_stop(totectl *ctl);

/* Stops if needed and frees everything. NULL allowed. */
void totectl_free(totectl *ctl);

/* Reports an action state. Assigns report_sequence, stores the report (state file) and sends it
 * if online; otherwise it goes out after the next welcome. 0, or -1 (bad arguments, too many
 * unacknowledged reports, state file not writable). */
int totectl_report_state(totectl *ctl, const totectl_action_report *r);

/* Reports an exception; like totectl_report_state. */
int totectl_report_exception(totectl *ctl, const totectl_exception *e);

/* Sets what the heartbeats say: Tote__V1__StationStatus and commands received but not
 * finished. */
void totectl_set_station_status(totectl *ctl, int status, uint32_t queued_commands);

/* Drops the current connection as if the network failed (for simulators and tests); the
 * session reconnects after the backoff. */
void totectl_disconnect(totectl *ctl, const char *reason);

/* The session state. */
totectl_session_state totectl_state(const totectl *ctl);
/* "offline", "connecting", "hello-sent", "online", "stopped". */
const char *totectl_state_name(totectl_session_state s);
/* The highest command sequence durably received (what the next hello will carry). */
uint64_t totectl_last_sequence_seen(const totectl *ctl);
/* The last report_sequence assigned. */
uint64_t totectl_last_report_sequence(const totectl *ctl);
/* Reports not yet acknowledged by the bridge. */
size_t totectl_pending_reports(const totectl *ctl);
/* The bridge's session id from the last welcome ("" before). */
const char *totectl_session_id(const totectl *ctl);
/* How many sessions were welcomed so far (1 after the first welcome). */
unsigned totectl_sessions(const totectl *ctl);
/* The address ("HOST:PORT") of the current or next connection attempt. */
const char *totectl_server(const totectl *ctl);

#ifdef __cplusplus
}
#endif

#endif /* TOTECTL_H */
