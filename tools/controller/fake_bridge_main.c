/*
 * totectl-fake-bridge: a scripted stand-in for the automation bridge, to run the controller
 * simulator end to end before the real bridge exists (tools/controller/test.sh uses it).
 *
 *   totectl-fake-bridge [--port P] [--tasks N] [--kind pick|pack] [--window W]
 *                       [--heartbeat-ms MS] [--drop-every K] [--duplicate] [--cancel-every K]
 *                       [--timeout-s S]
 *
 * Prints "listening on 127.0.0.1:PORT", then plays the bridge's side of docs/AUTOMATION.md for
 * N tasks (commands 1..N, ids cmd-0001...): welcome (resume from last_sequence_seen + 1, last
 * report recorded), commands within the window of unacknowledged ones, heartbeats, BridgeAck
 * of every report recorded in order (repeats are no-ops). --duplicate sends every command twice
 * (the second is a redelivery the controller must not run). --drop-every K drops the
 * connection after every K-th recorded report. --cancel-every K sends a CancelTask for every
 * K-th task right after it.
 *
 * Ends when every command has a final state (FINISHED or FAILED reported, or cancelled by a
 * CancelTask the bridge sent) and prints
 *   "fake-bridge: N commands: F finished, X failed, C cancelled, D run twice, R reports, S sessions"
 * Exit 0 if no task was run twice (two ACCEPTED reports for one command) and every report
 * sequence was contiguous; 1 otherwise; 2 on timeout.
 */
#define _POSIX_C_SOURCE 200809L

#include "fake_bridge.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task {
    char command_id[24], task_id[24];
    uint64_t sequence;
    int final_status; /* 0 = open */
    unsigned accepted;
} task;

typedef struct script {
    fake_bridge fb;
    task *tasks;
    unsigned ntasks, window, drop_every, cancel_every;
    int duplicate, kind_pick;
    uint64_t acked_seq;       /* the controller's ControllerAck */
    uint64_t next_to_send;    /* next command sequence to send in this session */
    uint64_t recorded;        /* highest report_sequence recorded, none missing */
    unsigned reports, finished, failed, sessions, doubled, cancelled, gaps;
    int online, drop_now;
    unsigned connection;      /* fb.connections when the session started */
    int64_t next_heartbeat;
    int heartbeat_ms;
} script;

static void send_msg(script *s, Tote__V1__BridgeMessage *m) { fb_send(&s->fb, m); }

static void send_command(script *s, const task *t) {
    Tote__V1__BridgeCommand c = TOTE__V1__BRIDGE_COMMAND__INIT;
    c.command_id = (char *)t->command_id;
    c.sequence = t->sequence;
    Tote__V1__PickLine l1 = TOTE__V1__PICK_LINE__INIT, l2 = TOTE__V1__PICK_LINE__INIT;
    Tote__V1__PickLine *lines[2] = {&l1, &l2};
    Tote__V1__PickTask pick = TOTE__V1__PICK_TASK__INIT;
    Tote__V1__PackItem item = TOTE__V1__PACK_ITEM__INIT;
    Tote__V1__PackItem *items[1] = {&item};
    Tote__V1__PackTask pack = TOTE__V1__PACK_TASK__INIT;
    Tote__V1__CancelTask cancel = TOTE__V1__CANCEL_TASK__INIT;
    char order[32];
    snprintf(order, sizeof order, "order-%llu", (unsigned long long)t->sequence);
    if (t->task_id[0] == 'x') { /* a cancel command: task_id "x<task>" */
        cancel.task_id = (char *)t->task_id + 1;
        cancel.reason = (char *)"order cancelled";
        c.action_case = TOTE__V1__BRIDGE_COMMAND__ACTION_CANCEL_TASK;
        c.cancel_task = &cancel;
    } else if (s->kind_pick) {
        l1.line_id = (char *)"1";
        l1.sku = (char *)"TSHIRT-RED-M";
        l1.location = (char *)"A-01-01";
        l1.quantity = 2;
        l2.line_id = (char *)"2";
        l2.sku = (char *)"MUG-BLUE";
        l2.location = (char *)"A-03-07";
        l2.quantity = 1;
        pick.task_id = (char *)t->task_id;
        pick.order_id = order;
        pick.lines = lines;
        pick.n_lines = 2;
        pick.zone = (char *)"A";
        c.action_case = TOTE__V1__BRIDGE_COMMAND__ACTION_PICK_TASK;
        c.pick_task = &pick;
    } else {
        item.sku = (char *)"TSHIRT-RED-M";
        item.quantity = 2;
        pack.task_id = (char *)t->task_id;
        pack.order_id = order;
        pack.items = items;
        pack.n_items = 1;
        c.action_case = TOTE__V1__BRIDGE_COMMAND__ACTION_PACK_TASK;
        c.pack_task = &pack;
    }
    Tote__V1__BridgeMessage m = TOTE__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_COMMAND;
    m.command = &c;
    send_msg(s, &m);
    if (s->duplicate) send_msg(s, &m);
}

static task *find_task(script *s, const char *command_id) {
    for (unsigned i = 0; i < s->ntasks; i++)
        if (strcmp(s->tasks[i].command_id, command_id) == 0) return &s->tasks[i];
    return NULL;
}

static void on_message(fake_bridge *fb, const Tote__V1__ControllerMessage *m, void *user) {
    (void)fb;
    script *s = user;
    switch (m->body_case) {
    case TOTE__V1__CONTROLLER_MESSAGE__BODY_HELLO: {
        s->sessions++;
        s->online = 1;
        s->connection = s->fb.connections;
        uint64_t last = m->hello->last_sequence_seen;
        if (last > s->acked_seq) s->acked_seq = last;
        printf("fake-bridge: hello from %s (last sequence seen %llu)\n", m->hello->controller_id,
               (unsigned long long)last);
        Tote__V1__Duration hb = TOTE__V1__DURATION__INIT;
        hb.micros = (int64_t)s->heartbeat_ms * 1000;
        Tote__V1__BridgeWelcome w = TOTE__V1__BRIDGE_WELCOME__INIT;
        w.resume_from_sequence = last + 1;
        w.heartbeat_interval = &hb;
        w.max_unacknowledged = s->window;
        w.last_report_sequence_recorded = s->recorded;
        char sid[32];
        snprintf(sid, sizeof sid, "fake-%u", s->sessions);
        w.session_id = sid;
        w.protocol_version = 1;
        Tote__V1__BridgeMessage bm = TOTE__V1__BRIDGE_MESSAGE__INIT;
        bm.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_WELCOME;
        bm.welcome = &w;
        send_msg(s, &bm);
        /* Resume: every open command after what the controller has. */
        s->next_to_send = last + 1;
        break;
    }
    case TOTE__V1__CONTROLLER_MESSAGE__BODY_ACK:
        if (m->ack->sequence > s->acked_seq) s->acked_seq = m->ack->sequence;
        break;
    case TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE:
    case TOTE__V1__CONTROLLER_MESSAGE__BODY_EXCEPTION_REPORT: {
        uint64_t rs = m->body_case == TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE
                          ? m->action_state->report_sequence
                          : m->exception_report->report_sequence;
        if (rs <= s->recorded) break; /* a resend: no-op */
        if (rs != s->recorded + 1) {
            printf("fake-bridge: report %llu arrived after %llu: gap\n", (unsigned long long)rs,
                   (unsigned long long)s->recorded);
            s->gaps++;
            break;
        }
        s->recorded = rs;
        s->reports++;
        if (m->body_case == TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE) {
            const Tote__V1__ActionState *a = m->action_state;
            task *t = find_task(s, a->command_id);
            if (t && a->status == TOTE__V1__ACTION_STATUS__ACTION_STATUS_ACCEPTED && ++t->accepted == 2) s->doubled++;
            if (t && (a->status == TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED ||
                      a->status == TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED) && !t->final_status) {
                t->final_status = a->status;
                if (a->status == TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED) s->finished++;
                else s->failed++;
            }
        }
        Tote__V1__BridgeAck ack = TOTE__V1__BRIDGE_ACK__INIT;
        ack.report_sequence = s->recorded;
        Tote__V1__BridgeMessage bm = TOTE__V1__BRIDGE_MESSAGE__INIT;
        bm.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_ACK;
        bm.ack = &ack;
        send_msg(s, &bm);
        if (s->drop_every && s->reports % s->drop_every == 0) {
            printf("fake-bridge: dropping the connection after report %llu\n", (unsigned long long)rs);
            s->drop_now = 1;
        }
        break;
    }
    default:
        break;
    }
}

int main(int argc, char **argv) {
    script s;
    memset(&s, 0, sizeof s);
    int port = 0;
    double timeout_s = 60;
    unsigned ntasks = 10;
    s.window = 4;
    s.heartbeat_ms = 1000;
    s.kind_pick = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--duplicate")) {
            s.duplicate = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "totectl-fake-bridge: %s needs a value\n", a);
            return 64;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--tasks")) ntasks = (unsigned)atoi(v);
        else if (!strcmp(a, "--kind")) s.kind_pick = strcmp(v, "pack") != 0;
        else if (!strcmp(a, "--window")) s.window = (unsigned)atoi(v);
        else if (!strcmp(a, "--heartbeat-ms")) s.heartbeat_ms = atoi(v);
        else if (!strcmp(a, "--drop-every")) s.drop_every = (unsigned)atoi(v);
        else if (!strcmp(a, "--cancel-every")) s.cancel_every = (unsigned)atoi(v);
        else if (!strcmp(a, "--timeout-s")) timeout_s = atof(v);
        else {
            fprintf(stderr, "totectl-fake-bridge: unknown option %s\n", a);
            return 64;
        }
    }
    if (s.window < 1) s.window = 1;
    /* The command list: tasks, each optionally followed by a cancel of it. */
    s.tasks = calloc(2 * ntasks + 1, sizeof *s.tasks);
    for (unsigned i = 0; i < ntasks; i++) {
        task *t = &s.tasks[s.ntasks];
        t->sequence = s.ntasks + 1;
        snprintf(t->command_id, sizeof t->command_id, "cmd-%04u", (unsigned)t->sequence);
        snprintf(t->task_id, sizeof t->task_id, "task-%04u", i + 1);
        s.ntasks++;
        if (s.cancel_every && (i + 1) % s.cancel_every == 0) {
            task *c = &s.tasks[s.ntasks];
            c->sequence = s.ntasks + 1;
            snprintf(c->command_id, sizeof c->command_id, "cmd-%04u", (unsigned)c->sequence);
            snprintf(c->task_id, sizeof c->task_id, "xtask-%04u", i + 1);
            s.ntasks++;
        }
    }
    fb_init(&s.fb, port);
    s.fb.user = &s;
    s.fb.on_message = on_message;
    printf("listening on 127.0.0.1:%d\n", s.fb.port);
    fflush(stdout);
    int64_t deadline = ctl_now_ms() + (int64_t)(timeout_s * 1000);
    int rc = 2;
    while (ctl_now_ms() < deadline) {
        unsigned before = s.fb.connections;
        fb_step(&s.fb);
        if (s.fb.connections != before && s.fb.connections != s.connection) s.online = 0; /* wait for its hello */
        if (s.drop_now) {
            fb_drop(&s.fb);
            s.drop_now = 0;
            s.online = 0;
        }
        if (s.online && s.fb.connections == s.connection && s.fb.fd >= 0) {
            /* Commands within the window; skip the ones already final. */
            while (s.next_to_send <= s.ntasks && s.next_to_send - s.acked_seq <= s.window) {
                task *t = &s.tasks[s.next_to_send - 1];
                if (!t->final_status) {
                    send_command(&s, t);
                    if (t->task_id[0] == 'x') { /* a cancel closes the cancelled task's command */
                        task *victim = &s.tasks[t->sequence - 2];
                        if (!victim->final_status) {
                            victim->final_status = -1;
                            s.cancelled++;
                        }
                    }
                }
                s.next_to_send++;
            }
            if (ctl_now_ms() >= s.next_heartbeat) {
                Tote__V1__BridgeHeartbeat hb = TOTE__V1__BRIDGE_HEARTBEAT__INIT;
                Tote__V1__BridgeMessage bm = TOTE__V1__BRIDGE_MESSAGE__INIT;
                bm.body_case = TOTE__V1__BRIDGE_MESSAGE__BODY_HEARTBEAT;
                bm.heartbeat = &hb;
                send_msg(&s, &bm);
                s.next_heartbeat = ctl_now_ms() + s.heartbeat_ms;
            }
        }
        unsigned open = 0;
        for (unsigned i = 0; i < s.ntasks; i++)
            if (!s.tasks[i].final_status) open++;
        if (open == 0) {
            rc = s.doubled || s.gaps ? 1 : 0;
            break;
        }
        poll(NULL, 0, 2);
    }
    printf("fake-bridge: %u commands: %u finished, %u failed, %u cancelled, %u run twice, %u reports, %u sessions%s\n",
           s.ntasks, s.finished, s.failed, s.cancelled, s.doubled, s.reports, s.sessions, rc == 2 ? " (timed out)" : "");
    fflush(stdout);
    fb_free(&s.fb);
    free(s.tasks);
    return rc;
}
