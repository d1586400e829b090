/*
 * test_session.c: libtotectl's controller session against an in-process fake bridge (a minimal
 * server side of the Tote wire protocol written here, on loopback TCP). One thread steps both
 * the SDK (totectl_poll) and the fake bridge, so every scenario is deterministic:
 *
 *   hello contents; welcome -> online; commands -> one callback each, cumulative acks, state
 *   file; a redelivered command is re-acked and not run; reports numbered and resent after a
 *   reconnect unless the welcome says they are recorded; BridgeAck drops them; a dropped
 *   connection reconnects and the hello resumes from the last sequence; a silent bridge is
 *   detected after the missed heartbeats; a STATUS ends the session; a command before the
 *   welcome is a protocol error; a restart resumes from the state file; stop sends GOAWAY.
 *
 * `make -C tools/controller check` runs it after the unit tests.
 */
#define _POSIX_C_SOURCE 200809L

#include "ctl_wire.h"
#include "fake_bridge.h"
#include "totectl.h"

#include "tote/v1/rpc.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures, checks;

#define EXPECT(cond)                                                                     \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                \
    } while (0)

/* ---- The controller under test ------------------------------------------------------------ */

typedef struct app {
    unsigned commands;
    char last_command_id[64];
    uint64_t last_sequence;
    int last_action;
} app;

static void on_command(totectl *ctl, const Tote__V1__BridgeCommand *cmd, void *user) {
    (void)ctl;
    app *a = user;
    a->commands++;
    snprintf(a->last_command_id, sizeof a->last_command_id, "%s", cmd->command_id);
    a->last_sequence = cmd->sequence;
    a->last_action = cmd->action_case;
}

static int verbose;
static void on_log(totectl *ctl, const char *line, void *user) {
    (void)ctl;
    (void)user;
    if (verbose) fprintf(stderr, "  sdk: %s\n", line);
}

static fake_bridge bridge;
static app the_app;
static char state_path[256];

static totectl *new_controller(void) {
    totectl_config cfg;
    totectl_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = bridge.port;
    cfg.api_key = "test-controller-key-0001";
    cfg.controller_id = "pick-07";
    cfg.station_kind = TOTE__V1__STATION_KIND__STATION_KIND_PICK;
    static const char *const caps[] = {"pick.multi_line"};
    static const char *const zones[] = {"A", "B"};
    cfg.capabilities = caps;
    cfg.capability_count = 1;
    cfg.zones = zones;
    cfg.zone_count = 2;
    cfg.warehouse_id = "wh-1";
    cfg.state_file = state_path;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 40;
    cfg.connect_timeout_ms = 2000;
    cfg.on_command = on_command;
    cfg.on_log = on_log;
    cfg.user = &the_app;
    char err[256];
    totectl *c = totectl_new(&cfg, err, sizeof err);
    if (!c) fprintf(stderr, "totectl_new: %s\n", err);
    return c;
}

/* Steps both sides (the SDK may be NULL) until cond holds or ms pass. */
static int64_t pump_until;
static void pump_step(totectl *ctl) {
    if (ctl)
        totectl_poll(ctl, 2);
    else
        poll(NULL, 0, 2);
    fb_step(&bridge);
}
#define PUMP(ctl, ms, cond) \
    for (pump_until = ctl_now_ms() + (ms); !(cond) && ctl_now_ms() < pump_until;) pump_step(ctl)
/* PUMP, then expect cond. */
#define EXPECT_PUMP(ctl, ms, cond) \
    do {                           \
        PUMP(ctl, ms, cond);       \
        EXPECT(cond);              \
    } while (0)

static void send_welcome(uint64_t resume_from, uint64_t reports_recorded, int heartbeat_ms) {
    Tote__V1__Duration hb = TOTE__V1__DURATION__INIT;
    hb.micros = (int64_t)heartbeat_ms * 1000;
    Tote__V1__BridgeWelcome w = TOTE__V1__BRIDGE_WELCOME__INIT;
    w.resume_from_sequence = resume_from;
    w.heartbeat_interval = &hb;
    w.max_unacknowledged = 8;
    w.last_report_sequence_recorded = reports_recorded;
    w.session_id = (char *)"session-1";
    w.protocol_version = 1;
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_WELCOME;
    m.welcome = &w;
    fb_send(&bridge, &m);
}

static void send_pick(const char *id, uint64_t seq, const char *task) {
    Tote__V1__PickLine line = TOTE__V1__PICK_LINE__INIT;
    line.line_id = (char *)"l1";
    line.sku = (char *)"SKU-1";
    line.location = (char *)"A-01-02";
    line.quantity = 2;
    Tote__V1__PickLine *lines[] = {&line};
    Tote__V1__PickTask t = TOTE__V1__PICK_TASK__INIT;
    t.task_id = (char *)task;
    t.order_id = (char *)"order-1";
    t.lines = lines;
    t.n_lines = 1;
    Tote__V1__BridgeCommand c = TOTE__V1__BRIDGE_COMMAND__INIT;
    c.command_id = (char *)id;
    c.sequence = seq;
    c.action_case = TOTE__V1__BRIDGE_COMMAND__ACTION_PICK_TASK;
    c.pick_task = &t;
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_COMMAND;
    m.command = &c;
    fb_send(&bridge, &m);
}

static void send_cancel(const char *id, uint64_t seq, const char *task) {
    Tote__V1__CancelTask t = TOTE__V1__CANCEL_TASK__INIT;
    t.task_id = (char *)task;
    t.reason = (char *)"order cancelled";
    Tote__V1__BridgeCommand c = TOTE__V1__BRIDGE_COMMAND__INIT;
    c.command_id = (char *)id;
    c.sequence = seq;
    c.action_case = TOTE__V1__BRIDGE_COMMAND__ACTION_CANCEL_TASK;
    c.cancel_task = &t;
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_COMMAND;
    m.command = &c;
    fb_send(&bridge, &m);
}

static void send_bridge_ack(uint64_t report_sequence) {
    Tote__V1__BridgeAck a = TOTE__V1__BRIDGE_ACK__INIT;
    a.report_sequence = report_sequence;
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_ACK;
    m.ack = &a;
    fb_send(&bridge, &m);
}

static void send_bridge_heartbeat(void) {
    Tote__V1__BridgeHeartbeat h = TOTE__V1__BRIDGE_HEARTBEAT__INIT;
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_HEARTBEAT;
    m.heartbeat = &h;
    fb_send(&bridge, &m);
}

static int report(totectl *c, const char *cmd, uint64_t seq, int status) {
    totectl_action_report r;
    memset(&r, 0, sizeof r);
    r.command_id = cmd;
    r.sequence = seq;
    r.task_id = "task-1";
    r.status = status;
    return totectl_report_state(c, &r);
}

/* The hellos received so far. */
static const Tote__V1__ControllerHello *hello(size_t nth) {
    const Tote__V1__ControllerMessage *m = fb_find(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO, nth);
    return m ? m->hello : NULL;
}

#define ACTION(nth) (fb_find(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE, (nth)))
#define N_ACTIONS() fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE)
#define N_HELLOS() fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO)
#define N_HEARTBEATS() fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_HEARTBEAT)

static void step(const char *name) { printf("# %s\n", name); }

/* Failover: a controller given two addresses (a standby that answers UNAVAILABLE, then the
 * active bridge) moves on until it is welcomed, and moves back when the active one goes away. */
static fake_bridge standby;
#define PUMP2(ctl, ms, cond)                                                                  \
    for (pump_until = ctl_now_ms() + (ms); !(cond) && ctl_now_ms() < pump_until;) {          \
        totectl_poll(ctl, 2);                                                                 \
        fb_step(&bridge);                                                                     \
        fb_step(&standby);                                                                    \
    }
#define EXPECT_PUMP2(ctl, ms, cond) \
    do {                            \
        PUMP2(ctl, ms, cond);       \
        EXPECT(cond);               \
    } while (0)

static void test_failover(void) {
    fb_init(&standby, 0);
    char a0[64], a1[64];
    snprintf(a0, sizeof a0, "127.0.0.1:%d", standby.port);
    snprintf(a1, sizeof a1, "127.0.0.1:%d", bridge.port);
    const char *const servers[] = {a0, a1};
    totectl_config cfg;
    totectl_config_init(&cfg);
    cfg.servers = servers;
    cfg.server_count = 2;
    cfg.api_key = "test-controller-key-0001";
    cfg.controller_id = "pick-failover";
    cfg.station_kind = TOTE__V1__STATION_KIND__STATION_KIND_PICK;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 40;
    cfg.connect_timeout_ms = 2000;
    cfg.on_command = on_command;
    cfg.on_log = on_log;
    cfg.user = &the_app;
    char err[256];
    totectl *c = totectl_new(&cfg, err, sizeof err);
    EXPECT(c != NULL);
    if (!c) return;
    EXPECT(strcmp(totectl_server(c), a0) == 0);

    step("failover: the first address is a standby (UNAVAILABLE): the controller moves to the next");
    size_t hellos_active = N_HELLOS();
    EXPECT_PUMP2(c, 2000, fb_count(&standby, TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO) == 1);
    fb_status(&standby, 14, "standby bridge: not the active bridge of warehouse 'main'; retry");
    EXPECT_PUMP2(c, 2000, N_HELLOS() == hellos_active + 1);
    EXPECT(strcmp(totectl_server(c), a1) == 0);
    send_welcome(1, 0, 300);
    EXPECT_PUMP2(c, 1000, totectl_state(c) == TOTECTL_ONLINE);
    unsigned commands = the_app.commands;
    send_pick("fo-1", 1, "task-fo-1");
    EXPECT_PUMP2(c, 1000, the_app.commands == commands + 1 && fb_last_ack(&bridge) == 1);

    step("failover: the active bridge dies; the controller resumes at the other address");
    fb_drop(&bridge);
    EXPECT_PUMP2(c, 2000, fb_count(&standby, TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO) == 2);
    const Tote__V1__ControllerMessage *h = fb_find(&standby, TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO, 1);
    if (h) EXPECT(h->hello->last_sequence_seen == 1);
    EXPECT(strcmp(totectl_server(c), a0) == 0);
    EXPECT(standby.connections == 2);

    step("failover: a bad address list is refused by totectl_new");
    const char *const bad[] = {"127.0.0.1:7700", "no-port"};
    cfg.servers = bad;
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL && strstr(err, "servers[1]") != NULL);
    const char *const bad_port[] = {"127.0.0.1:70000"};
    cfg.servers = bad_port;
    cfg.server_count = 1;
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL && strstr(err, "servers[0]") != NULL);
    const char *const v6[] = {"[::1]:7700"};
    cfg.servers = v6;
    totectl *v6c = totectl_new(&cfg, err, sizeof err);
    EXPECT(v6c != NULL && strcmp(totectl_server(v6c), "[::1]:7700") == 0);
    totectl_free(v6c);

    totectl_free(c);
    fb_free(&standby);
}

int main(int argc, char **argv) {
    verbose = argc > 1 && !strcmp(argv[1], "-v");
    snprintf(state_path, sizeof state_path, "/tmp/totectl-session-%d.state", (int)getpid());
    unlink(state_path);
    fb_init(&bridge, 0);
    totectl *c = new_controller();
    EXPECT(c != NULL);
    if (!c) return 1;

    step("hello on connect, with the controller's identity and last sequence 0");
    EXPECT_PUMP(c, 2000, N_HELLOS() == 1);
    EXPECT(strcmp(bridge.method, "tote.v1.Automation/Connect") == 0);
    EXPECT(strcmp(bridge.auth, "test-controller-key-0001") == 0);
    EXPECT(totectl_state(c) == TOTECTL_HELLO_SENT);
    if (hello(0)) {
        EXPECT(strcmp(hello(0)->controller_id, "pick-07") == 0);
        EXPECT(hello(0)->station_kind == TOTE__V1__STATION_KIND__STATION_KIND_PICK);
        EXPECT(hello(0)->last_sequence_seen == 0);
        EXPECT(hello(0)->n_capabilities == 1 && strcmp(hello(0)->capabilities[0], "pick.multi_line") == 0);
        EXPECT(hello(0)->n_zones == 2 && strcmp(hello(0)->warehouse_id, "wh-1") == 0);
        EXPECT(hello(0)->protocol_version == 1 && strncmp(hello(0)->sdk_version, "tote-controller-sdk", 19) == 0);
    }

    step("welcome -> online, first heartbeat at once");
    send_welcome(1, 0, 300);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE && N_HEARTBEATS() >= 1);
    EXPECT(strcmp(totectl_session_id(c), "session-1") == 0);

    step("commands: one callback each, cumulative ack, durable sequence");
    send_pick("cmd-1", 1, "task-1");
    send_pick("cmd-2", 2, "task-2");
    EXPECT_PUMP(c, 1000, the_app.commands == 2 && fb_last_ack(&bridge) == 2);
    EXPECT(strcmp(the_app.last_command_id, "cmd-2") == 0 && the_app.last_sequence == 2);
    EXPECT(totectl_last_sequence_seen(c) == 2);

    step("a redelivered command is acknowledged again but not run");
    size_t acks_before = fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK);
    send_pick("cmd-2", 2, "task-2");
    EXPECT_PUMP(c, 1000, fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK) == acks_before + 1);
    EXPECT(the_app.commands == 2);
    EXPECT(fb_last_ack(&bridge) == 2);

    step("reports are numbered from 1; BridgeAck drops them");
    EXPECT(report(c, "cmd-1", 1, TOTE__V1__ACTION_STATUS__ACTION_STATUS_ACCEPTED) == 0);
    EXPECT(report(c, "cmd-1", 1, TOTE__V1__ACTION_STATUS__ACTION_STATUS_RUNNING) == 0);
    EXPECT(report(c, "cmd-1", 1, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED) == 0);
    EXPECT_PUMP(c, 1000, N_ACTIONS() == 3);
    if (ACTION(0) && ACTION(2)) {
        EXPECT(ACTION(0)->action_state->report_sequence == 1);
        EXPECT(ACTION(0)->action_state->status == TOTE__V1__ACTION_STATUS__ACTION_STATUS_ACCEPTED);
        EXPECT(ACTION(2)->action_state->report_sequence == 3 && ACTION(2)->action_state->sequence == 1);
    }
    EXPECT(totectl_pending_reports(c) == 3);
    send_bridge_ack(1);
    EXPECT_PUMP(c, 1000, totectl_pending_reports(c) == 2);

    step("heartbeats keep flowing while the bridge heartbeats too");
    size_t hb_before = N_HEARTBEATS();
    for (int i = 0; i < 4; i++) {
        send_bridge_heartbeat();
        PUMP(c, 250, 0);
    }
    EXPECT(totectl_state(c) == TOTECTL_ONLINE);
    EXPECT(N_HEARTBEATS() >= hb_before + 2);
    EXPECT(bridge.connections == 1);

    step("connection dropped -> reconnect, hello resumes from sequence 2, unrecorded reports resent");
    fb_drop(&bridge);
    EXPECT_PUMP(c, 3000, N_HELLOS() == 2);
    EXPECT(bridge.connections == 2);
    if (hello(1)) EXPECT(hello(1)->last_sequence_seen == 2);
    size_t actions_before = N_ACTIONS();
    send_welcome(3, 2, 300); /* the bridge had recorded report 2 as well */
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE && N_ACTIONS() == actions_before + 1);
    if (ACTION(actions_before)) EXPECT(ACTION(actions_before)->action_state->report_sequence == 3);
    EXPECT(totectl_pending_reports(c) == 1);
    EXPECT(totectl_sessions(c) == 2);

    step("resent open commands: the ones already seen are no-ops, new ones run");
    send_pick("cmd-2", 2, "task-2");
    send_cancel("cmd-3", 3, "task-1");
    EXPECT_PUMP(c, 1000, fb_last_ack(&bridge) == 3);
    EXPECT(the_app.commands == 3 && the_app.last_action == TOTE__V1__BRIDGE_COMMAND__ACTION_CANCEL_TASK);
    send_bridge_ack(3);
    EXPECT_PUMP(c, 1000, totectl_pending_reports(c) == 0);

    step("a silent bridge is detected after 3 missed heartbeats (300 ms each)");
    int64_t t0 = ctl_now_ms();
    EXPECT_PUMP(c, 3000, totectl_state(c) != TOTECTL_ONLINE);
    int64_t took = ctl_now_ms() - t0;
    EXPECT(took >= 700 && took <= 1500);
    EXPECT_PUMP(c, 2000, N_HELLOS() == 3);
    if (hello(2)) EXPECT(hello(2)->last_sequence_seen == 3);

    step("a command before the welcome is a protocol error: the session restarts");
    send_pick("cmd-4", 4, "task-4");
    EXPECT_PUMP(c, 2000, N_HELLOS() == 4);
    EXPECT(the_app.commands == 3);

    step("a STATUS from the bridge ends the session; the controller reconnects");
    send_welcome(4, 3, 300);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE);
    fb_status(&bridge, 10, "session replaced by a newer one");
    EXPECT_PUMP(c, 1000, totectl_state(c) != TOTECTL_ONLINE);
    EXPECT_PUMP(c, 2000, N_HELLOS() == 5);

    step("reports made while offline are sent after the welcome");
    fb_drop(&bridge);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_OFFLINE || totectl_state(c) == TOTECTL_CONNECTING);
    EXPECT(report(c, "cmd-3", 3, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED) == 0);
    EXPECT(totectl_pending_reports(c) == 1);
    actions_before = N_ACTIONS();
    EXPECT_PUMP(c, 2000, N_HELLOS() == 6);
    send_welcome(4, 3, 300);
    EXPECT_PUMP(c, 1000, N_ACTIONS() == actions_before + 1);
    if (ACTION(actions_before)) EXPECT(ACTION(actions_before)->action_state->report_sequence == 4);

    step("restart: the state file restores the sequence, the report counter and pending reports");
    totectl_free(c);
    c = NULL;
    PUMP(c, 500, bridge.peer_goaway || bridge.eof);
    c = new_controller();
    EXPECT(c != NULL);
    if (!c) return 1;
    EXPECT(totectl_last_sequence_seen(c) == 3);
    EXPECT(totectl_last_report_sequence(c) == 4);
    EXPECT(totectl_pending_reports(c) == 1);
    EXPECT_PUMP(c, 2000, N_HELLOS() == 7);
    if (hello(6)) EXPECT(hello(6)->last_sequence_seen == 3);
    actions_before = N_ACTIONS();
    send_welcome(4, 3, 300);
    EXPECT_PUMP(c, 1000, N_ACTIONS() == actions_before + 1);
    send_pick("cmd-3", 3, "task-1"); /* already seen before the restart */
    send_pick("cmd-5", 5, "task-5");
    EXPECT_PUMP(c, 1000, fb_last_ack(&bridge) == 5);
    EXPECT(the_app.commands == 4 && strcmp(the_app.last_command_id, "cmd-5") == 0);

    step("a welcome recording more reports than the controller counted: the counter continues after it");
    fb_drop(&bridge);
    EXPECT_PUMP(c, 2000, N_HELLOS() == 8);
    send_welcome(6, 40, 300);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE);
    EXPECT(totectl_last_report_sequence(c) == 40);
    EXPECT(totectl_pending_reports(c) == 0);
    actions_before = N_ACTIONS();
    EXPECT(report(c, "cmd-5", 5, TOTE__V1__ACTION_STATUS__ACTION_STATUS_ACCEPTED) == 0);
    EXPECT_PUMP(c, 1000, N_ACTIONS() == actions_before + 1);
    if (ACTION(actions_before)) EXPECT(ACTION(actions_before)->action_state->report_sequence == 41);

    step("no ack owed to an old session is sent in a new one");
    size_t acks = fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK);
    send_pick("cmd-5", 5, "task-5");          /* a duplicate: an ack becomes due ... */
    fb_status(&bridge, 14, "stepping down"); /* ... but the session ends in the same read */
    EXPECT_PUMP(c, 2000, N_HELLOS() == 9);
    send_welcome(6, 41, 300);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE);
    PUMP(c, 100, 0);
    EXPECT(fb_count(&bridge, TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK) == acks);

    step("a burst of 30 reports passes the bridge's 8-message window in order (flow control)");
    size_t burst_start = N_ACTIONS();
    uint64_t first = totectl_last_report_sequence(c) + 1;
    for (int i = 0; i < 30; i++) report(c, "cmd-5", 5, TOTE__V1__ACTION_STATUS__ACTION_STATUS_RUNNING);
    EXPECT_PUMP(c, 2000, N_ACTIONS() >= burst_start + 30);
    int in_order = N_ACTIONS() >= burst_start + 30;
    for (size_t i = 0; in_order && i < 30; i++)
        if (ACTION(burst_start + i)->action_state->report_sequence != first + i) in_order = 0;
    EXPECT(in_order);
    send_bridge_ack(first + 29);
    EXPECT_PUMP(c, 1000, totectl_pending_reports(c) == 0);

    step("no welcome within the connect timeout (2 s): the controller reconnects");
    fb_drop(&bridge);
    EXPECT_PUMP(c, 2000, N_HELLOS() == 10);
    int64_t t1 = ctl_now_ms();
    EXPECT_PUMP(c, 4000, N_HELLOS() == 11);
    EXPECT(ctl_now_ms() - t1 >= 1900);
    send_welcome(6, 71, 300);
    EXPECT_PUMP(c, 1000, totectl_state(c) == TOTECTL_ONLINE);

    step("stop: half-close and GOAWAY reach the bridge");
    totectl_stop(c);
    EXPECT(totectl_state(c) == TOTECTL_STOPPED);
    EXPECT(totectl_poll(c, 0) == -1);
    for (int i = 0; i < 50 && !(bridge.peer_goaway && bridge.peer_half_closed); i++) {
        fb_step(&bridge);
        poll(NULL, 0, 2);
    }
    EXPECT(bridge.peer_half_closed && bridge.peer_goaway);
    totectl_free(c);

    test_failover();

    fb_free(&bridge);
    unlink(state_path);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
