/*
 * tote-controller-sim: a simulated pick or pack station on libtotectl.
 *
 *   tote-controller-sim --host H --port P --key KEY --id pick-01 --kind pick|pack
 *       [--servers H:P,H:P...] [--pick-ms MEAN/JITTER] [--fail-rate F] [--jam-rate F] [--disconnect-rate F]
 *       [--state-file PATH] [--warehouse W] [--zones A,B] [--seed N] [--run-for-s S]
 *
 * Every command is accepted at once (ActionState ACCEPTED) and worked one at a time: RUNNING,
 * then after a normally distributed time (MEAN ms, standard deviation JITTER ms, at least 0)
 * FINISHED with what was picked / packed. With probability --jam-rate the task fails instead
 * with a JAM exception (retriable); with probability --fail-rate it fails with a short pick
 * (pick: SHORT_PICK exception, FAILED "LOCATION_EMPTY", part of the units picked) or no
 * packaging (pack: NO_PACKAGING exception, FAILED "NO_BOX", retriable). A CancelTask drops the
 * task if queued or running (no more reports for it) and reports the cancel command FINISHED, or
 * FAILED "ALREADY_FINISHED" if the task was already done (docs/AUTOMATION.md section 7). --disconnect-rate is the chance per
 * second of dropping the connection (the SDK reconnects and resumes). The key may come from
 * TOTE_API_KEY instead of --key. --servers lists every bridge that may be active (active and
 * standbys): the SDK moves to the next one after each failed attempt or lost session.
 *
 * Logs one line per event on stdout: "<UTC time> <controller id> <event> key=value ...".
 * SIGTERM or SIGINT: stops cleanly (state saved) and exits 0. Exit 64 on bad usage, 1 if the
 * state file is unusable.
 *
 * Limitation: the queue of accepted, unfinished tasks lives in memory; a restarted simulator
 * forgets them (a real controller persists its work queue).
 */
#define _POSIX_C_SOURCE 200809L

#include "totectl.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* ---- Jobs --------------------------------------------------------------------------------- */

typedef struct line {
    char *line_id, *sku, *location;
    uint32_t quantity;
} line;

typedef struct job {
    struct job *next;
    char *command_id, *task_id, *order_id;
    uint64_t sequence;
    int kind; /* BridgeCommand action case */
    line *lines;
    size_t line_count;
    uint32_t units; /* pack: total units */
} job;

typedef struct sim {
    const char *id;
    int station_kind;
    double pick_mean_ms, pick_jitter_ms, fail_rate, jam_rate, disconnect_rate;
    totectl *ctl;
    job *queue_head, *queue_tail; /* accepted, not started */
    job *running;
    int64_t running_done_ms;
    size_t queued;
    unsigned long finished, failed, cancelled;
    char done_tasks[64][48]; /* recently finished or failed tasks, for CancelTask */
    size_t done_next;
} sim;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void logline(const sim *s, const char *fmt, ...) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%s.%03ldZ %s %s\n", ts, (long)(tv.tv_usec / 1000), s->id, msg);
    fflush(stdout);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double urand(void) { return (double)rand() / ((double)RAND_MAX + 1.0); }

/* A normal variate (Box-Muller). */
static double gauss(double mean, double sd) {
    double u1 = urand(), u2 = urand();
    if (u1 < 1e-12) u1 = 1e-12;
    return mean + sd * sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979 * u2);
}

static char *sdup(const char *s) { return strdup(s ? s : ""); }

static void free_job(job *j) {
    if (!j) return;
    for (size_t i = 0; i < j->line_count; i++) {
        free(j->lines[i].line_id);
        free(j->lines[i].sku);
        free(j->lines[i].location);
    }
    free(j->lines);
    free(j->command_id);
    free(j->task_id);
    free(j->order_id);
    free(j);
}

static void update_status(sim *s) {
    int status = s->running ? TOTE__V1__STATION_STATUS__STATION_STATUS_BUSY : TOTE__V1__STATION_STATUS__STATION_STATUS_IDLE;
    totectl_set_station_status(s->ctl, status, (uint32_t)(s->queued + (s->running ? 1 : 0)));
}

static void report(sim *s, const job *j, int status, const char *code, const char *text, int retriable,
                   const totectl_picked *picked, size_t npicked, int packed) {
    totectl_action_report r;
    memset(&r, 0, sizeof r);
    r.command_id = j->command_id;
    r.sequence = j->sequence;
    r.task_id = j->task_id;
    r.status = status;
    r.failure_code = code;
    r.failure_text = text;
    r.retriable = retriable;
    r.picked = picked;
    r.picked_count = npicked;
    if (packed) {
        r.has_pack_result = 1;
        r.box_used = j->units > 3 ? "BOX-L" : "BOX-M";
        r.weight_grams = 200 + 350 * j->units + (uint32_t)(urand() * 100);
        r.parcel_count = 1;
    }
    if (totectl_report_state(s->ctl, &r) != 0) logline(s, "error: could not record a report for %s", j->command_id);
}

/* ---- SDK callbacks ------------------------------------------------------------------------ */

static void on_command(totectl *ctl, const Tote__V1__BridgeCommand *cmd, void *user) {
    (void)ctl;
    sim *s = user;
    job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->command_id = sdup(cmd->command_id);
    j->sequence = cmd->sequence;
    j->kind = cmd->action_case;
    if (cmd->action_case == TOTE__V1__BRIDGE_COMMAND__ACTION_CANCEL_TASK) {
        const char *task = cmd->cancel_task->task_id ? cmd->cancel_task->task_id : "";
        j->task_id = sdup(task);
        logline(s, "command seq=%llu id=%s cancel task=%s reason=\"%s\"", (unsigned long long)cmd->sequence,
                j->command_id, task, cmd->cancel_task->reason ? cmd->cancel_task->reason : "");
        /* Drop the task wherever it is. */
        job **pp = &s->queue_head, *victim = NULL;
        for (; *pp; pp = &(*pp)->next)
            if (strcmp((*pp)->task_id, task) == 0) {
                victim = *pp;
                *pp = victim->next;
                s->queued--;
                break;
            }
        s->queue_tail = NULL;
        for (job *q = s->queue_head; q; q = q->next) s->queue_tail = q;
        if (!victim && s->running && strcmp(s->running->task_id, task) == 0) {
            victim = s->running;
            s->running = NULL;
        }
        int already_done = 0;
        for (size_t k = 0; k < 64; k++)
            if (strcmp(s->done_tasks[k], task) == 0 && task[0]) already_done = 1;
        if (victim) {
            /* Dropped; no further reports for its command (docs/AUTOMATION.md section 7). */
            logline(s, "cancelled task=%s command=%s", victim->task_id, victim->command_id);
            s->cancelled++;
            free_job(victim);
            report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED, NULL, NULL, 0, NULL, 0, 0);
        } else if (already_done) {
            logline(s, "cancel task=%s: already finished", task);
            report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "ALREADY_FINISHED",
                   "the task was finished before the cancel arrived", 0, NULL, 0, 0);
        } else {
            logline(s, "cancel task=%s: unknown here", task);
            report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED, NULL, NULL, 0, NULL, 0, 0);
        }
        free_job(j);
        update_status(s);
        return;
    }
    if (cmd->action_case == TOTE__V1__BRIDGE_COMMAND__ACTION_PICK_TASK) {
        const Tote__V1__PickTask *t = cmd->pick_task;
        j->task_id = sdup(t->task_id);
        j->order_id = sdup(t->order_id);
        j->lines = calloc(t->n_lines ? t->n_lines : 1, sizeof *j->lines);
        j->line_count = t->n_lines;
        for (size_t i = 0; i < t->n_lines; i++) {
            j->lines[i].line_id = sdup(t->lines[i]->line_id);
            j->lines[i].sku = sdup(t->lines[i]->sku);
            j->lines[i].location = sdup(t->lines[i]->location);
            j->lines[i].quantity = t->lines[i]->quantity;
        }
        logline(s, "command seq=%llu id=%s pick task=%s order=%s lines=%zu zone=%s", (unsigned long long)cmd->sequence,
                j->command_id, j->task_id, j->order_id, t->n_lines, t->zone ? t->zone : "");
    } else if (cmd->action_case == TOTE__V1__BRIDGE_COMMAND__ACTION_PACK_TASK) {
        const Tote__V1__PackTask *t = cmd->pack_task;
        j->task_id = sdup(t->task_id);
        j->order_id = sdup(t->order_id);
        for (size_t i = 0; i < t->n_items; i++) j->units += t->items[i]->quantity;
        logline(s, "command seq=%llu id=%s pack task=%s order=%s items=%zu units=%u", (unsigned long long)cmd->sequence,
                j->command_id, j->task_id, j->order_id, t->n_items, j->units);
    } else {
        j->task_id = sdup("");
        logline(s, "command seq=%llu id=%s with no action: rejected", (unsigned long long)cmd->sequence, j->command_id);
        report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "UNSUPPORTED", "command has no action", 0, NULL, 0, 0);
        free_job(j);
        return;
    }
    int wrong_kind = (j->kind == TOTE__V1__BRIDGE_COMMAND__ACTION_PICK_TASK) !=
                     (s->station_kind == TOTE__V1__STATION_KIND__STATION_KIND_PICK);
    if (wrong_kind) {
        report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "WRONG_STATION_KIND",
               "this station cannot do this kind of task", 0, NULL, 0, 0);
        logline(s, "rejected task=%s: wrong station kind", j->task_id);
        free_job(j);
        return;
    }
    report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_ACCEPTED, NULL, NULL, 0, NULL, 0, 0);
    logline(s, "accepted task=%s queued=%zu", j->task_id, s->queued + 1);
    if (s->queue_tail)
        s->queue_tail->next = j;
    else
        s->queue_head = j;
    s->queue_tail = j;
    s->queued++;
    update_status(s);
}

static void on_state(totectl *ctl, totectl_session_state st, const char *reason, void *user) {
    sim *s = user;
    logline(s, "session %s%s%s (last sequence seen %llu, %zu unacknowledged report(s))", totectl_state_name(st),
            *reason ? ": " : "", reason, (unsigned long long)totectl_last_sequence_seen(ctl), totectl_pending_reports(ctl));
}

static void on_log(totectl *ctl, const char *line, void *user) {
    (void)ctl;
    logline(user, "sdk: %s", line);
}

/* ---- Work --------------------------------------------------------------------------------- */

static void start_next(sim *s) {
    if (s->running || !s->queue_head) return;
    job *j = s->queue_head;
    s->queue_head = j->next;
    if (!s->queue_head) s->queue_tail = NULL;
    s->queued--;
    j->next = NULL;
    s->running = j;
    double ms = gauss(s->pick_mean_ms, s->pick_jitter_ms);
    if (ms < 0) ms = 0;
    s->running_done_ms = mono_ms() + (int64_t)ms;
    report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_RUNNING, NULL, NULL, 0, NULL, 0, 0);
    logline(s, "running task=%s for %.0f ms", j->task_id, ms);
    update_status(s);
}

static void finish_running(sim *s) {
    job *j = s->running;
    s->running = NULL;
    double roll = urand();
    int is_pick = j->kind == TOTE__V1__BRIDGE_COMMAND__ACTION_PICK_TASK;
    if (roll < s->jam_rate) {
        totectl_exception e;
        memset(&e, 0, sizeof e);
        e.kind = TOTE__V1__EXCEPTION_KIND__EXCEPTION_KIND_JAM;
        e.command_id = j->command_id;
        e.task_id = j->task_id;
        e.text = is_pick ? "gripper jammed" : "conveyor jammed";
        totectl_report_exception(s->ctl, &e);
        report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "JAM", e.text, 1, NULL, 0, 0);
        logline(s, "jam task=%s: failed (retriable)", j->task_id);
        s->failed++;
    } else if (roll < s->jam_rate + s->fail_rate) {
        totectl_exception e;
        memset(&e, 0, sizeof e);
        e.command_id = j->command_id;
        e.task_id = j->task_id;
        if (is_pick && j->line_count > 0) {
            /* Short pick on the last line: everything before it picked in full. */
            size_t n = j->line_count;
            totectl_picked *p = calloc(n, sizeof *p);
            for (size_t i = 0; p && i < n; i++) {
                p[i].line_id = j->lines[i].line_id;
                p[i].sku = j->lines[i].sku;
                p[i].location = j->lines[i].location;
                p[i].quantity = i + 1 < n ? j->lines[i].quantity
                                          : (j->lines[i].quantity > 0 ? j->lines[i].quantity - 1 : 0);
            }
            e.kind = TOTE__V1__EXCEPTION_KIND__EXCEPTION_KIND_SHORT_PICK;
            e.sku = j->lines[n - 1].sku;
            e.location = j->lines[n - 1].location;
            e.quantity_expected = j->lines[n - 1].quantity;
            e.quantity_found = p ? p[n - 1].quantity : 0;
            e.text = "fewer units at the location than expected";
            totectl_report_exception(s->ctl, &e);
            report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "LOCATION_EMPTY", e.text, 0, p, p ? n : 0, 0);
            free(p);
            logline(s, "short pick task=%s sku=%s location=%s expected=%u found=%u", j->task_id, e.sku, e.location,
                    e.quantity_expected, e.quantity_found);
        } else {
            e.kind = TOTE__V1__EXCEPTION_KIND__EXCEPTION_KIND_NO_PACKAGING;
            e.text = "no suitable box";
            totectl_report_exception(s->ctl, &e);
            report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FAILED, "NO_BOX", e.text, 1, NULL, 0, 0);
            logline(s, "failed task=%s: no box (retriable)", j->task_id);
        }
        s->failed++;
    } else if (is_pick) {
        size_t n = j->line_count;
        totectl_picked *p = calloc(n ? n : 1, sizeof *p);
        for (size_t i = 0; p && i < n; i++) {
            p[i].line_id = j->lines[i].line_id;
            p[i].sku = j->lines[i].sku;
            p[i].location = j->lines[i].location;
            p[i].quantity = j->lines[i].quantity;
        }
        report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED, NULL, NULL, 0, p, p ? n : 0, 0);
        free(p);
        logline(s, "finished pick task=%s lines=%zu", j->task_id, n);
        s->finished++;
    } else {
        report(s, j, TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED, NULL, NULL, 0, NULL, 0, 1);
        logline(s, "finished pack task=%s units=%u", j->task_id, j->units);
        s->finished++;
    }
    snprintf(s->done_tasks[s->done_next], sizeof s->done_tasks[0], "%s", j->task_id);
    s->done_next = (s->done_next + 1) % 64;
    free_job(j);
    update_status(s);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(const char *why) {
    if (why) fprintf(stderr, "tote-controller-sim: %s\n", why);
    fprintf(stderr,
            "usage: tote-controller-sim (--host H --port P | --servers H:P,H:P...) --key KEY --id ID --kind pick|pack\n"
            "         [--pick-ms MEAN/JITTER] [--fail-rate F] [--jam-rate F] [--disconnect-rate F]\n"
            "         [--state-file PATH] [--warehouse W] [--zones A,B] [--seed N] [--run-for-s S]\n"
            "         [--heartbeat-ms MS] [--backoff-ms INITIAL/MAX]\n");
    exit(64);
}

static double rate_arg(const char *name, const char *v) {
    char *end;
    double d = strtod(v, &end);
    if (*end || d < 0 || d > 1) {
        char why[128];
        snprintf(why, sizeof why, "%s must be a number between 0 and 1", name);
        usage(why);
    }
    return d;
}

int main(int argc, char **argv) {
    sim s;
    memset(&s, 0, sizeof s);
    totectl_config cfg;
    totectl_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.api_key = getenv("TOTE_API_KEY");
    s.pick_mean_ms = 800;
    s.pick_jitter_ms = 200;
    const char *kind = NULL;
    char *zones_copy = NULL;
    const char *zones[32];
    size_t nzones = 0;
    char *servers_copy = NULL;
    const char *servers[16];
    size_t nservers = 0;
    unsigned seed = (unsigned)time(NULL);
    double run_for_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(NULL);
        if (i + 1 >= argc) usage("missing value");
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) cfg.host = v;
        else if (!strcmp(a, "--port")) cfg.port = atoi(v);
        else if (!strcmp(a, "--servers")) {
            free(servers_copy);
            servers_copy = strdup(v);
            nservers = 0;
            for (char *t = strtok(servers_copy, ","); t; t = strtok(NULL, ",")) {
                if (nservers == 16) usage("--servers takes at most 16 addresses");
                servers[nservers++] = t;
            }
            if (nservers == 0) usage("--servers wants HOST:PORT[,HOST:PORT...]");
        }
        else if (!strcmp(a, "--key")) cfg.api_key = v;
        else if (!strcmp(a, "--id")) cfg.controller_id = v;
        else if (!strcmp(a, "--kind")) kind = v;
        else if (!strcmp(a, "--pick-ms")) {
            char *slash;
            s.pick_mean_ms = strtod(v, &slash);
            s.pick_jitter_ms = *slash == '/' ? strtod(slash + 1, NULL) : 0;
            if (s.pick_mean_ms < 0 || s.pick_jitter_ms < 0) usage("--pick-ms wants MEAN/JITTER in ms");
        } else if (!strcmp(a, "--fail-rate")) s.fail_rate = rate_arg(a, v);
        else if (!strcmp(a, "--jam-rate")) s.jam_rate = rate_arg(a, v);
        else if (!strcmp(a, "--disconnect-rate")) s.disconnect_rate = rate_arg(a, v);
        else if (!strcmp(a, "--state-file")) cfg.state_file = v;
        else if (!strcmp(a, "--warehouse")) cfg.warehouse_id = v;
        else if (!strcmp(a, "--zones")) {
            zones_copy = strdup(v);
            for (char *t = strtok(zones_copy, ","); t && nzones < 32; t = strtok(NULL, ",")) zones[nzones++] = t;
        } else if (!strcmp(a, "--seed")) seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--run-for-s")) run_for_s = strtod(v, NULL);
        else if (!strcmp(a, "--heartbeat-ms")) cfg.heartbeat_interval_ms = atoi(v);
        else if (!strcmp(a, "--backoff-ms")) {
            char *slash;
            cfg.backoff_initial_ms = (int)strtol(v, &slash, 10);
            if (*slash == '/') cfg.backoff_max_ms = atoi(slash + 1);
        } else {
            char why[128];
            snprintf(why, sizeof why, "unknown option %s", a);
            usage(why);
        }
    }
    if (!cfg.api_key) usage("--key (or TOTE_API_KEY) is required");
    if (!cfg.controller_id) usage("--id is required");
    if (!kind || (strcmp(kind, "pick") && strcmp(kind, "pack"))) usage("--kind must be pick or pack");
    if (s.fail_rate + s.jam_rate > 1) usage("--fail-rate plus --jam-rate must be at most 1");
    s.station_kind = !strcmp(kind, "pick") ? TOTE__V1__STATION_KIND__STATION_KIND_PICK
                                           : TOTE__V1__STATION_KIND__STATION_KIND_PACK;
    s.id = cfg.controller_id;
    srand(seed);
    static const char *const pick_caps[] = {"pick.multi_line", "pick.short_pick_report"};
    static const char *const pack_caps[] = {"pack.label_print", "pack.weigh"};
    cfg.station_kind = s.station_kind;
    cfg.capabilities = s.station_kind == TOTE__V1__STATION_KIND__STATION_KIND_PICK ? pick_caps : pack_caps;
    cfg.capability_count = 2;
    cfg.zones = zones;
    cfg.zone_count = nzones;
    cfg.servers = servers;
    cfg.server_count = nservers;
    cfg.firmware_version = "tote-controller-sim 0.1.0";
    cfg.on_command = on_command;
    cfg.on_state = on_state;
    cfg.on_log = on_log;
    cfg.user = &s;

    /* A parent may have started us with SIGTERM/SIGINT blocked (the mask is inherited, e.g. from a
     * Swift test process): unblock them, or the simulator could not be stopped cleanly. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    s.ctl = totectl_new(&cfg, err, sizeof err);
    if (!s.ctl) {
        fprintf(stderr, "tote-controller-sim: %s\n", err);
        free(zones_copy);
        free(servers_copy);
        return 1;
    }
    logline(&s, "start kind=%s server=%s servers=%zu pick-ms=%.0f/%.0f fail-rate=%g jam-rate=%g disconnect-rate=%g "
                "last-sequence-seen=%llu state-file=%s",
            kind, totectl_server(s.ctl), nservers ? nservers : 1, s.pick_mean_ms, s.pick_jitter_ms, s.fail_rate, s.jam_rate, s.disconnect_rate,
            (unsigned long long)totectl_last_sequence_seen(s.ctl), cfg.state_file ? cfg.state_file : "(none)");
    int64_t started = mono_ms(), next_disconnect_roll = started + 1000;
    while (!stop_signal) {
        int64_t now = mono_ms();
        if (run_for_s > 0 && now - started >= (int64_t)(run_for_s * 1000)) break;
        if (s.running && now >= s.running_done_ms) finish_running(&s);
        start_next(&s);
        if (now >= next_disconnect_roll) {
            next_disconnect_roll = now + 1000;
            if (s.disconnect_rate > 0 && totectl_state(s.ctl) == TOTECTL_ONLINE && urand() < s.disconnect_rate) {
                logline(&s, "simulated disconnect");
                totectl_disconnect(s.ctl, "simulated network drop");
            }
        }
        int wait = 100;
        if (s.running) {
            int64_t left = s.running_done_ms - mono_ms();
            if (left < wait) wait = left < 0 ? 0 : (int)left;
        }
        if (totectl_poll(s.ctl, wait) != 0) break;
    }
    logline(&s, "stopping (%s) finished=%lu failed=%lu cancelled=%lu", stop_signal ? "signal" : "run time over",
            s.finished, s.failed, s.cancelled);
    totectl_stop(s.ctl);
    totectl_free(s.ctl);
    free_job(s.running);
    while (s.queue_head) {
        job *j = s.queue_head;
        s.queue_head = j->next;
        free_job(j);
    }
    free(zones_copy);
    return 0;
}
