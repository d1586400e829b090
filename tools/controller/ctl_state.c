/*
 * ctl_state.c: durable controller state, duplicate detection and backoff. See ctl_state.h.
 *
 * State file format (text, one record per line, unknown keys ignored for forward compatibility):
 *
 *     totectl-state 1
 *     last_sequence_seen 42
 *     last_report_sequence 17
 *     acked_report_sequence 15
 *     command 41 5b0c...-uuid          (recent command ids, oldest first)
 *     report 16 0a1c...hex             (unacknowledged reports: a serialized ControllerMessage)
 */
#define _POSIX_C_SOURCE 200809L

#include "ctl_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ctl_state_init(ctl_state *s) { memset(s, 0, sizeof *s); }

void ctl_state_free(ctl_state *s) {
    for (size_t i = 0; i < s->report_count; i++) free(s->reports[i].bytes);
    free(s->reports);
    s->reports = NULL;
    s->report_count = s->report_cap = 0;
}

static int recent_contains(const ctl_state *s, const char *id) {
    for (size_t i = 0; i < s->recent_count; i++)
        if (strcmp(s->recent_ids[i], id) == 0) return 1;
    return 0;
}

ctl_command_verdict ctl_state_classify(const ctl_state *s, const char *command_id, uint64_t sequence) {
    if (!command_id || !*command_id || strlen(command_id) > CTL_COMMAND_ID_MAX || sequence == 0)
        return CTL_COMMAND_INVALID;
    if (recent_contains(s, command_id)) return CTL_COMMAND_DUPLICATE;
    if (sequence <= s->last_sequence_seen) return CTL_COMMAND_DUPLICATE;
    return CTL_COMMAND_NEW;
}

void ctl_state_record_command(ctl_state *s, const char *command_id, uint64_t sequence) {
    if (!recent_contains(s, command_id)) {
        snprintf(s->recent_ids[s->recent_next], CTL_COMMAND_ID_MAX + 1, "%s", command_id);
        s->recent_seqs[s->recent_next] = sequence;
        s->recent_next = (s->recent_next + 1) % CTL_RECENT_COMMANDS;
        if (s->recent_count < CTL_RECENT_COMMANDS) s->recent_count++;
    }
    if (sequence > s->last_sequence_seen) s->last_sequence_seen = sequence;
}

uint64_t ctl_state_ack_sequence(const ctl_state *s) { return s->last_sequence_seen; }

uint64_t ctl_state_next_report_sequence(ctl_state *s) { return ++s->last_report_sequence; }

int ctl_state_add_report(ctl_state *s, uint64_t report_sequence, const uint8_t *bytes, size_t len) {
    if (s->report_count >= CTL_MAX_PENDING_REPORTS) return -1;
    if (s->report_count == s->report_cap) {
        size_t cap = s->report_cap ? s->report_cap * 2 : 16;
        ctl_report *r = realloc(s->reports, cap * sizeof *r);
        if (!r) return -1;
        s->reports = r;
        s->report_cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return -1;
    if (len) memcpy(copy, bytes, len);
    s->reports[s->report_count].report_sequence = report_sequence;
    s->reports[s->report_count].len = len;
    s->reports[s->report_count].bytes = copy;
    s->report_count++;
    return 0;
}

size_t ctl_state_ack_reports(ctl_state *s, uint64_t report_sequence) {
    if (report_sequence > s->acked_report_sequence) s->acked_report_sequence = report_sequence;
    size_t keep = 0, dropped = 0;
    for (size_t i = 0; i < s->report_count; i++) {
        if (s->reports[i].report_sequence <= report_sequence) {
            free(s->reports[i].bytes);
            dropped++;
        } else {
            s->reports[keep++] = s->reports[i];
        }
    }
    s->report_count = keep;
    return dropped;
}

int ctl_state_save(const ctl_state *s, const char *path) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return -1;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return -1;
    }
    fprintf(f, "totectl-state 1\n");
    fprintf(f, "last_sequence_seen %llu\n", (unsigned long long)s->last_sequence_seen);
    fprintf(f, "last_report_sequence %llu\n", (unsigned long long)s->last_report_sequence);
    fprintf(f, "acked_report_sequence %llu\n", (unsigned long long)s->acked_report_sequence);
    /* Oldest first, so that loading replays the ring in the same order. */
    size_t start = s->recent_count < CTL_RECENT_COMMANDS ? 0 : s->recent_next;
    for (size_t k = 0; k < s->recent_count; k++) {
        size_t i = (start + k) % CTL_RECENT_COMMANDS;
        fprintf(f, "command %llu %s\n", (unsigned long long)s->recent_seqs[i], s->recent_ids[i]);
    }
    for (size_t i = 0; i < s->report_count; i++) {
        fprintf(f, "report %llu ", (unsigned long long)s->reports[i].report_sequence);
        for (size_t j = 0; j < s->reports[i].len; j++) fprintf(f, "%02x", s->reports[i].bytes[j]);
        fputc('\n', f);
    }
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = -1;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
    }
    free(tmp);
    return rc;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int ctl_state_load(ctl_state *s, const char *path, char *errbuf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        snprintf(errbuf, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    ctl_state fresh;
    ctl_state_init(&fresh);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char key[32], rest[CTL_COMMAND_ID_MAX + 2];
        unsigned long long v = 0;
        if (lineno == 1) {
            if (strcmp(line, "totectl-state 1") != 0) {
                snprintf(errbuf, cap, "%s:1: not a totectl state file (version 1)", path);
                rc = -1;
                break;
            }
            continue;
        }
        if (n == 0) continue;
        if (strncmp(line, "report ", 7) == 0) {
            char *end = NULL;
            errno = 0;
            v = strtoull(line + 7, &end, 10);
            if (errno || end == line + 7 || *end != ' ' || (strlen(end + 1) % 2) != 0) {
                snprintf(errbuf, cap, "%s:%u: malformed report line", path, lineno);
                rc = -1;
                break;
            }
            const char *hex = end + 1;
            size_t len = strlen(hex) / 2;
            uint8_t *buf = malloc(len ? len : 1);
            if (!buf) {
                snprintf(errbuf, cap, "out of memory");
                rc = -1;
                break;
            }
            int bad = 0;
            for (size_t i = 0; i < len && !bad; i++) {
                int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
                if (hi < 0 || lo < 0) bad = 1;
                buf[i] = (uint8_t)(hi << 4 | lo);
            }
            if (bad || ctl_state_add_report(&fresh, v, buf, len) != 0) {
                free(buf);
                snprintf(errbuf, cap, "%s:%u: malformed report line", path, lineno);
                rc = -1;
                break;
            }
            free(buf);
            continue;
        }
        int fields = sscanf(line, "%31s %llu %65s", key, &v, rest);
        if (fields < 2) {
            snprintf(errbuf, cap, "%s:%u: malformed line", path, lineno);
            rc = -1;
            break;
        }
        if (strcmp(key, "last_sequence_seen") == 0)
            fresh.last_sequence_seen = v;
        else if (strcmp(key, "last_report_sequence") == 0)
            fresh.last_report_sequence = v;
        else if (strcmp(key, "acked_report_sequence") == 0)
            fresh.acked_report_sequence = v;
        else if (strcmp(key, "command") == 0) {
            if (fields != 3 || strlen(rest) > CTL_COMMAND_ID_MAX) {
                snprintf(errbuf, cap, "%s:%u: malformed command line", path, lineno);
                rc = -1;
                break;
            }
            uint64_t keep = fresh.last_sequence_seen;
            ctl_state_record_command(&fresh, rest, v);
            if (fresh.last_sequence_seen < keep) fresh.last_sequence_seen = keep;
        } /* unknown keys: ignored */
    }
    if (rc == 0 && lineno == 0) {
        snprintf(errbuf, cap, "%s: empty state file", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        ctl_state_free(&fresh);
        return -1;
    }
    ctl_state_free(s);
    *s = fresh;
    return 0;
}

int64_t ctl_backoff_ms(unsigned attempt, int64_t initial_ms, int64_t max_ms, double rand01) {
    if (initial_ms < 1) initial_ms = 1;
    if (max_ms < initial_ms) max_ms = initial_ms;
    int64_t d = initial_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++) d *= 2;
    if (d > max_ms) d = max_ms;
    if (rand01 < 0) rand01 = 0;
    if (rand01 >= 1) rand01 = 0.999999;
    /* +-20 % jitter (docs/AUTOMATION.md section 1), so that stations cut off together do not
     * reconnect in lock step. */
    return (int64_t)((double)d * (0.8 + 0.4 * rand01));
}
