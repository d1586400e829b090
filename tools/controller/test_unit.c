/*
 * test_unit.c: unit tests of libtotectl's own logic, no network: sequence tracking, duplicate
 * command detection, report bookkeeping, the state file round trip, backoff, and the frame
 * checks of the wire layer. `make -C tools/controller check` runs them; prints one line per
 * failed expectation and a summary; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include "ctl_state.h"
#include "ctl_wire.h"
#include "totectl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static char tmpdir[256];

static void path_in_tmp(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* ---- Sequence tracking and duplicates ---------------------------------------------------- */

static void test_fresh_state(void) {
    ctl_state s;
    ctl_state_init(&s);
    EXPECT(ctl_state_ack_sequence(&s) == 0);
    EXPECT(ctl_state_classify(&s, "a", 1) == CTL_COMMAND_NEW);
    EXPECT(ctl_state_classify(&s, "a", 0) == CTL_COMMAND_INVALID);
    EXPECT(ctl_state_classify(&s, "", 1) == CTL_COMMAND_INVALID);
    EXPECT(ctl_state_classify(&s, NULL, 1) == CTL_COMMAND_INVALID);
    char longid[CTL_COMMAND_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    EXPECT(ctl_state_classify(&s, longid, 1) == CTL_COMMAND_INVALID);
    ctl_state_free(&s);
}

static void test_sequence_and_duplicates(void) {
    ctl_state s;
    ctl_state_init(&s);
    ctl_state_record_command(&s, "cmd-1", 1);
    ctl_state_record_command(&s, "cmd-2", 2);
    EXPECT(ctl_state_ack_sequence(&s) == 2);
    /* Redelivery with the same id and sequence: duplicate. */
    EXPECT(ctl_state_classify(&s, "cmd-2", 2) == CTL_COMMAND_DUPLICATE);
    EXPECT(ctl_state_classify(&s, "cmd-1", 1) == CTL_COMMAND_DUPLICATE);
    /* A known id is a duplicate whatever its sequence says. */
    EXPECT(ctl_state_classify(&s, "cmd-1", 9) == CTL_COMMAND_DUPLICATE);
    /* An unknown id at or below the last sequence seen: already received (ring evicted it). */
    EXPECT(ctl_state_classify(&s, "other", 2) == CTL_COMMAND_DUPLICATE);
    /* The next one, and one after a gap (the bridge skips commands closed meanwhile). */
    EXPECT(ctl_state_classify(&s, "cmd-3", 3) == CTL_COMMAND_NEW);
    EXPECT(ctl_state_classify(&s, "cmd-7", 7) == CTL_COMMAND_NEW);
    ctl_state_record_command(&s, "cmd-7", 7);
    EXPECT(ctl_state_ack_sequence(&s) == 7);
    /* Recording a lower sequence never lowers the watermark. */
    ctl_state_record_command(&s, "late", 5);
    EXPECT(ctl_state_ack_sequence(&s) == 7);
    /* Recording the same id twice keeps one entry. */
    size_t before = s.recent_count;
    ctl_state_record_command(&s, "cmd-7", 7);
    EXPECT(s.recent_count == before);
    ctl_state_free(&s);
}

static void test_recent_ring_eviction(void) {
    ctl_state s;
    ctl_state_init(&s);
    char id[32];
    for (unsigned i = 1; i <= CTL_RECENT_COMMANDS + 10; i++) {
        snprintf(id, sizeof id, "c-%u", i);
        ctl_state_record_command(&s, id, i);
    }
    EXPECT(s.recent_count == CTL_RECENT_COMMANDS);
    EXPECT(ctl_state_ack_sequence(&s) == CTL_RECENT_COMMANDS + 10);
    /* c-1 fell out of the ring but its sequence still marks it as seen. */
    EXPECT(ctl_state_classify(&s, "c-1", 1) == CTL_COMMAND_DUPLICATE);
    snprintf(id, sizeof id, "c-%u", CTL_RECENT_COMMANDS + 10);
    EXPECT(ctl_state_classify(&s, id, CTL_RECENT_COMMANDS + 10) == CTL_COMMAND_DUPLICATE);
    EXPECT(ctl_state_classify(&s, "new", CTL_RECENT_COMMANDS + 11) == CTL_COMMAND_NEW);
    ctl_state_free(&s);
}

/* ---- Reports ------------------------------------------------------------------------------ */

static void test_reports(void) {
    ctl_state s;
    ctl_state_init(&s);
    EXPECT(ctl_state_next_report_sequence(&s) == 1);
    EXPECT(ctl_state_next_report_sequence(&s) == 2);
    EXPECT(ctl_state_next_report_sequence(&s) == 3);
    const uint8_t a[] = {1, 2, 3}, b[] = {4}, c[] = {0};
    EXPECT(ctl_state_add_report(&s, 1, a, sizeof a) == 0);
    EXPECT(ctl_state_add_report(&s, 2, b, sizeof b) == 0);
    EXPECT(ctl_state_add_report(&s, 3, c, 0) == 0);
    EXPECT(s.report_count == 3);
    EXPECT(ctl_state_ack_reports(&s, 0) == 0);
    EXPECT(ctl_state_ack_reports(&s, 2) == 2);
    EXPECT(s.report_count == 1 && s.reports[0].report_sequence == 3);
    EXPECT(s.acked_report_sequence == 2);
    /* An older ack does not lower the watermark or drop anything. */
    EXPECT(ctl_state_ack_reports(&s, 1) == 0);
    EXPECT(s.acked_report_sequence == 2);
    EXPECT(ctl_state_ack_reports(&s, 100) == 1);
    EXPECT(s.report_count == 0);
    /* The bound on unacknowledged reports. */
    int full = 0;
    for (unsigned i = 0; i < CTL_MAX_PENDING_REPORTS + 1; i++)
        if (ctl_state_add_report(&s, 200 + i, a, 1) != 0) full++;
    EXPECT(full == 1);
    EXPECT(s.report_count == CTL_MAX_PENDING_REPORTS);
    ctl_state_free(&s);
}

/* ---- State file --------------------------------------------------------------------------- */

static void test_state_file_round_trip(void) {
    char path[512];
    path_in_tmp(path, sizeof path, "rt.state");
    ctl_state s;
    ctl_state_init(&s);
    char id[40];
    for (unsigned i = 1; i <= CTL_RECENT_COMMANDS + 3; i++) { /* wraps the ring */
        snprintf(id, sizeof id, "5b0c1d2e-0000-4000-8000-%012u", i);
        ctl_state_record_command(&s, id, i * 2);
    }
    s.last_report_sequence = 41;
    const uint8_t r1[] = {0x12, 0x00, 0xff, 0x7f}, r2[] = {0xab};
    ctl_state_add_report(&s, 40, r1, sizeof r1);
    ctl_state_add_report(&s, 41, r2, sizeof r2);
    ctl_state_ack_reports(&s, 39);
    EXPECT(ctl_state_save(&s, path) == 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(access(tmp, F_OK) != 0); /* renamed into place */

    ctl_state t;
    ctl_state_init(&t);
    char err[256] = "";
    EXPECT(ctl_state_load(&t, path, err, sizeof err) == 0);
    EXPECT(t.last_sequence_seen == s.last_sequence_seen);
    EXPECT(t.last_report_sequence == 41);
    EXPECT(t.acked_report_sequence == 39);
    EXPECT(t.recent_count == s.recent_count);
    EXPECT(t.report_count == 2);
    EXPECT(t.reports[0].report_sequence == 40 && t.reports[0].len == 4 && memcmp(t.reports[0].bytes, r1, 4) == 0);
    EXPECT(t.reports[1].report_sequence == 41 && t.reports[1].len == 1 && t.reports[1].bytes[0] == 0xab);
    /* Every remembered id is still a duplicate, the evicted ones by sequence. */
    for (unsigned i = 1; i <= CTL_RECENT_COMMANDS + 3; i++) {
        snprintf(id, sizeof id, "5b0c1d2e-0000-4000-8000-%012u", i);
        EXPECT(ctl_state_classify(&t, id, i * 2) == CTL_COMMAND_DUPLICATE);
    }
    /* Saving the loaded state again gives the same file (same ring order). */
    char path2[512];
    path_in_tmp(path2, sizeof path2, "rt2.state");
    EXPECT(ctl_state_save(&t, path2) == 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, path2);
    EXPECT(system(cmd) == 0);
    /* The next recorded id evicts the oldest remembered one, as before the round trip. */
    ctl_state_record_command(&s, "z", 100000);
    ctl_state_record_command(&t, "z", 100000);
    EXPECT(strcmp(s.recent_ids[(s.recent_next + CTL_RECENT_COMMANDS - 1) % CTL_RECENT_COMMANDS], "z") == 0);
    EXPECT(strcmp(t.recent_ids[(t.recent_next + CTL_RECENT_COMMANDS - 1) % CTL_RECENT_COMMANDS], "z") == 0);
    EXPECT(strcmp(s.recent_ids[s.recent_next], t.recent_ids[t.recent_next]) == 0);
    ctl_state_free(&s);
    ctl_state_free(&t);
}

static void test_state_file_errors(void) {
    char path[512], err[256];
    ctl_state s;
    ctl_state_init(&s);
    path_in_tmp(path, sizeof path, "missing.state");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == 1);
    EXPECT(s.last_sequence_seen == 0);

    path_in_tmp(path, sizeof path, "bad-magic.state");
    write_file(path, "something else\nlast_sequence_seen 3\n");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == -1);
    EXPECT(strstr(err, "not a totectl state file") != NULL);

    path_in_tmp(path, sizeof path, "empty.state");
    write_file(path, "");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == -1);

    path_in_tmp(path, sizeof path, "bad-number.state");
    write_file(path, "totectl-state 1\nlast_sequence_seen x\n");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == -1);
    EXPECT(strstr(err, ":2:") != NULL);

    path_in_tmp(path, sizeof path, "bad-hex.state");
    write_file(path, "totectl-state 1\nreport 3 0g\n");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == -1);
    write_file(path, "totectl-state 1\nreport 3 abc\n");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == -1);

    /* A failed load leaves the state untouched. */
    EXPECT(s.last_sequence_seen == 0 && s.report_count == 0);

    /* Unknown keys are ignored; blank lines too. */
    path_in_tmp(path, sizeof path, "future.state");
    write_file(path, "totectl-state 1\nlast_sequence_seen 9\n\nsome_future_key 5\n");
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == 0);
    EXPECT(s.last_sequence_seen == 9);

    /* Saving into a directory that does not exist fails cleanly. */
    path_in_tmp(path, sizeof path, "no/such/dir/x.state");
    EXPECT(ctl_state_save(&s, path) == -1);
    ctl_state_free(&s);
}

/* ---- Backoff ------------------------------------------------------------------------------ */

static void test_backoff(void) {
    /* +-20 % jitter around d. */
    EXPECT(ctl_backoff_ms(0, 100, 5000, 0.0) == 80);
    EXPECT(ctl_backoff_ms(0, 100, 5000, 0.5) == 100);
    EXPECT(ctl_backoff_ms(0, 100, 5000, 0.999999) == 119);
    EXPECT(ctl_backoff_ms(1, 100, 5000, 0.5) == 200);
    EXPECT(ctl_backoff_ms(3, 100, 5000, 0.5) == 800);
    /* Capped at max (before jitter). */
    EXPECT(ctl_backoff_ms(20, 100, 5000, 0.5) == 5000);
    EXPECT(ctl_backoff_ms(1000, 100, 5000, 0.0) == 4000);
    EXPECT(ctl_backoff_ms(1000, 100, 5000, 0.999999) <= 6000);
    /* Monotonic in the attempt for a fixed draw. */
    int64_t prev = 0;
    for (unsigned a = 0; a < 40; a++) {
        int64_t d = ctl_backoff_ms(a, 100, 5000, 0.5);
        EXPECT(d >= prev && d <= 5000 && d >= 100);
        prev = d;
    }
    /* Out-of-range inputs are clamped. */
    EXPECT(ctl_backoff_ms(0, 0, 0, 2.0) >= 0);
    EXPECT(ctl_backoff_ms(0, 100, 10, -1.0) == 80);
}

/* ---- Wire frame checks -------------------------------------------------------------------- */

static long next(const uint8_t *b, size_t n, ctl_frame_header *h, uint32_t *code, char *why) {
    return ctl_next_frame(b, n, CTL_MAX_FRAME_SIZE, h, code, why, 200);
}

static void test_frames(void) {
    ctl_buf b = {0};
    EXPECT(ctl_buf_put_frame(&b, CTL_F_MESSAGE, CTL_FLAG_END_STREAM, 7, "abc", 3) == 0);
    EXPECT(b.len == 13);
    ctl_frame_header h;
    uint32_t code = 0;
    char why[200];
    for (size_t n = 0; n < 13; n++) EXPECT(next(b.data, n, &h, &code, why) == 0); /* partial */
    EXPECT(next(b.data, 13, &h, &code, why) == 13);
    EXPECT(h.type == CTL_F_MESSAGE && h.flags == CTL_FLAG_END_STREAM && h.stream == 7 && h.length == 3);
    ctl_buf_free(&b);

    /* Header-only rejections, before the payload arrives. */
    uint8_t hdr[10] = {0, 0, 0, 0, 0x9, 0, 0, 0, 0, 1};
    EXPECT(next(hdr, 10, &h, &code, why) == -1 && code == CTL_E_PROTOCOL_ERROR && strstr(why, "unknown frame type"));
    uint8_t big[10] = {0, 0x40, 0, 1, CTL_F_MESSAGE, 0, 0, 0, 0, 1};
    EXPECT(next(big, 10, &h, &code, why) == -1 && code == CTL_E_FRAME_SIZE_ERROR);
    uint8_t flags[10] = {0, 0, 0, 0, CTL_F_STATUS, 1, 0, 0, 0, 1};
    EXPECT(next(flags, 10, &h, &code, why) == -1 && strstr(why, "undefined flags"));
    uint8_t ping_on_stream[10] = {0, 0, 0, 8, CTL_F_PING, 0, 0, 0, 0, 1};
    EXPECT(next(ping_on_stream, 10, &h, &code, why) == -1 && strstr(why, "must be on stream 0"));
    uint8_t msg_on_zero[10] = {0, 0, 0, 0, CTL_F_MESSAGE, 0, 0, 0, 0, 0};
    EXPECT(next(msg_on_zero, 10, &h, &code, why) == -1 && strstr(why, "must not be on stream 0"));
    uint8_t short_ping[10] = {0, 0, 0, 7, CTL_F_PING, 0, 0, 0, 0, 0};
    EXPECT(next(short_ping, 10, &h, &code, why) == -1 && strstr(why, "wrong size"));
    uint8_t bad_settings[10] = {0, 0, 0, 5, CTL_F_SETTINGS, 0, 0, 0, 0, 0};
    EXPECT(next(bad_settings, 10, &h, &code, why) == -1);
    uint8_t short_goaway[10] = {0, 0, 0, 4, CTL_F_GOAWAY, 0, 0, 0, 0, 0};
    EXPECT(next(short_goaway, 10, &h, &code, why) == -1);
    uint8_t wu[10] = {0, 0, 0, 3, CTL_F_WINDOW_UPDATE, 0, 0, 0, 0, 1};
    EXPECT(next(wu, 10, &h, &code, why) == -1);
    /* PING ACK is allowed; two frames back to back split correctly. */
    ctl_buf two = {0};
    ctl_buf_put_frame(&two, CTL_F_PING, CTL_FLAG_ACK, 0, "12345678", 8);
    ctl_buf_put_frame(&two, CTL_F_STATUS, 0, 3, NULL, 0);
    long used = next(two.data, two.len, &h, &code, why);
    EXPECT(used == 18 && h.type == CTL_F_PING && h.flags == CTL_FLAG_ACK);
    EXPECT(next(two.data + used, two.len - (size_t)used, &h, &code, why) == 10 && h.type == CTL_F_STATUS);
    ctl_buf_consume(&two, (size_t)used);
    EXPECT(two.len == 10);
    ctl_buf_free(&two);

    /* Untrusted text is sanitized. */
    char out[8];
    ctl_copy_text(out, sizeof out, "a\x1b[2Jbcdefgh", 12);
    EXPECT(strcmp(out, "a?[2Jbc") == 0);
    EXPECT(strcmp(ctl_status_name(12), "UNIMPLEMENTED") == 0);
    EXPECT(strcmp(ctl_status_name(99), "CODE_99") == 0);
}

/* ---- Public API argument checks (no network: totectl_new does not connect) ---------------- */

static void test_config(void) {
    totectl_config cfg;
    totectl_config_init(&cfg);
    char err[256];
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL); /* no host, id, key */
    cfg.host = "127.0.0.1";
    cfg.api_key = "k";
    cfg.controller_id = "pick-01";
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL); /* no station kind */
    cfg.station_kind = TOTE__V1__STATION_KIND__STATION_KIND_PICK;
    cfg.controller_id = "pick 01"; /* a space is not allowed */
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL && strstr(err, "controller_id") != NULL);
    cfg.controller_id = "";
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL);
    cfg.controller_id = "pick-01.zone_A";
    char path[512];
    path_in_tmp(path, sizeof path, "cfg.state");
    write_file(path, "totectl-state 1\nlast_sequence_seen 12\nlast_report_sequence 4\n");
    cfg.state_file = path;
    totectl *c = totectl_new(&cfg, err, sizeof err);
    EXPECT(c != NULL);
    if (c) {
        EXPECT(totectl_last_sequence_seen(c) == 12);
        EXPECT(totectl_last_report_sequence(c) == 4);
        EXPECT(totectl_state(c) == TOTECTL_OFFLINE);
        /* Reports made while offline are kept (and persisted) for the next session. */
        totectl_action_report r = {0};
        r.command_id = "cmd";
        r.sequence = 12;
        r.task_id = "task";
        r.status = TOTE__V1__ACTION_STATUS__ACTION_STATUS_FINISHED;
        EXPECT(totectl_report_state(c, &r) == 0);
        totectl_exception e = {0};
        e.kind = TOTE__V1__EXCEPTION_KIND__EXCEPTION_KIND_JAM;
        EXPECT(totectl_report_exception(c, &e) == 0);
        EXPECT(totectl_pending_reports(c) == 2);
        EXPECT(totectl_last_report_sequence(c) == 6);
        totectl_free(c);
    }
    /* ... and survive a restart, decodable. */
    c = totectl_new(&cfg, err, sizeof err);
    EXPECT(c != NULL);
    if (c) {
        EXPECT(totectl_pending_reports(c) == 2);
        EXPECT(totectl_last_report_sequence(c) == 6);
        totectl_free(c);
    }
    ctl_state s;
    ctl_state_init(&s);
    EXPECT(ctl_state_load(&s, path, err, sizeof err) == 0);
    EXPECT(s.report_count == 2);
    if (s.report_count == 2) {
        Tote__V1__ControllerMessage *m = tote__v1__controller_message__unpack(NULL, s.reports[0].len, s.reports[0].bytes);
        EXPECT(m && m->body_case == TOTE__V1__CONTROLLER_MESSAGE__BODY_ACTION_STATE);
        if (m) {
            EXPECT(m->action_state->report_sequence == 5 && strcmp(m->action_state->command_id, "cmd") == 0);
            tote__v1__controller_message__free_unpacked(m, NULL);
        }
        m = tote__v1__controller_message__unpack(NULL, s.reports[1].len, s.reports[1].bytes);
        EXPECT(m && m->body_case == TOTE__V1__CONTROLLER_MESSAGE__BODY_EXCEPTION_REPORT);
        if (m) {
            EXPECT(m->exception_report->report_sequence == 6 && strlen(m->exception_report->exception_id) == 36);
            tote__v1__controller_message__free_unpacked(m, NULL);
        }
    }
    ctl_state_free(&s);
    /* A corrupt state file refuses to start (rather than resuming from the wrong sequence). */
    write_file(path, "garbage\n");
    EXPECT(totectl_new(&cfg, err, sizeof err) == NULL);
    EXPECT(strstr(err, "state file") != NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/totectl-unit-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"fresh state", test_fresh_state},
        {"sequence tracking and duplicate commands", test_sequence_and_duplicates},
        {"recent-id ring eviction", test_recent_ring_eviction},
        {"report bookkeeping", test_reports},
        {"state file round trip", test_state_file_round_trip},
        {"state file errors", test_state_file_errors},
        {"backoff", test_backoff},
        {"frame checks", test_frames},
        {"config and offline reports", test_config},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].fn();
        printf("%s - %s\n", failures == before ? "ok" : "FAIL", tests[i].name);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    (void)system(cmd);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
