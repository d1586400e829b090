/*
 * ctl_state.h: internal to libtotectl. The controller's durable session state and the pure
 * logic around it, with no I/O except ctl_state_save/ctl_state_load (unit-tested in test_unit.c):
 *
 *   - command sequence tracking and duplicate detection (a redelivered command is a no-op);
 *   - the report counter and the reports not yet acknowledged by the bridge (resent after a
 *     reconnect);
 *   - the state file (text, written atomically: temp file, fsync, rename);
 *   - reconnect backoff.
 */
#ifndef CTL_STATE_H
#define CTL_STATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How many recent command ids are remembered for duplicate detection. */
#define CTL_RECENT_COMMANDS 256
/* Longest command id kept (UUIDs are 36 characters). */
#define CTL_COMMAND_ID_MAX 64
/* Most reports kept while the bridge has not acknowledged them. */
#define CTL_MAX_PENDING_REPORTS 4096

/* A report (ActionState or ExceptionReport) waiting for the bridge's BridgeAck. */
typedef struct ctl_report {
    uint64_t report_sequence;
    size_t len;
    uint8_t *bytes; /* a serialized tote.v1.ControllerMessage */
} ctl_report;

/* Everything a controller must keep across restarts. */
typedef struct ctl_state {
    /* The highest command sequence durably received (ControllerHello.last_sequence_seen). */
    uint64_t last_sequence_seen;
    /* The last report_sequence assigned (the next report gets one more). */
    uint64_t last_report_sequence;
    /* The highest report_sequence the bridge has acknowledged. */
    uint64_t acked_report_sequence;
    /* Ring of recent command ids and their sequences, oldest overwritten first. */
    char recent_ids[CTL_RECENT_COMMANDS][CTL_COMMAND_ID_MAX + 1];
    uint64_t recent_seqs[CTL_RECENT_COMMANDS];
    size_t recent_count, recent_next;
    /* Unacknowledged reports, in report_sequence order. */
    ctl_report *reports;
    size_t report_count, report_cap;
} ctl_state;

/* What to do with a received command. */
typedef enum ctl_command_verdict {
    /* New: run it (invoke the callback), then record it with ctl_state_record_command. */
    CTL_COMMAND_NEW = 0,
    /* A redelivery of a command already received: do not run it again, just re-ack. */
    CTL_COMMAND_DUPLICATE = 1,
    /* Not acceptable (empty or over-long id, sequence 0): drop it and log. */
    CTL_COMMAND_INVALID = 2
} ctl_command_verdict;

/* Initializes an empty state (a fresh controller). */
void ctl_state_init(ctl_state *s);
/* Frees the pending reports. */
void ctl_state_free(ctl_state *s);

/* Classifies a command by id and sequence. A command is a duplicate if its id is among the
 * recent ids, or if its sequence is at or below last_sequence_seen (already durably received:
 * the bridge only redelivers with the same id and sequence). Pure. */
ctl_command_verdict ctl_state_classify(const ctl_state *s, const char *command_id, uint64_t sequence);

/* Records a command as received: remembers its id and raises last_sequence_seen. */
void ctl_state_record_command(ctl_state *s, const char *command_id, uint64_t sequence);

/* The value for ControllerAck.sequence: every command up to it has been received. */
uint64_t ctl_state_ack_sequence(const ctl_state *s);

/* Assigns the next report_sequence. */
uint64_t ctl_state_next_report_sequence(ctl_state *s);

/* Keeps a serialized report until the bridge acknowledges it (copies the bytes). -1 when full or
 * out of memory. */
int ctl_state_add_report(ctl_state *s, uint64_t report_sequence, const uint8_t *bytes, size_t len);

/* BridgeAck: drops every report up to report_sequence. Returns how many were dropped. */
size_t ctl_state_ack_reports(ctl_state *s, uint64_t report_sequence);

/* Writes the state to `path` atomically (path.tmp, fsync, rename). 0 or -1 (errno set). */
int ctl_state_save(const ctl_state *s, const char *path);

/* Reads a state written by ctl_state_save into an initialized `s`. Returns 0; 1 if the file
 * does not exist (s stays fresh); -1 if it is unreadable or malformed (errbuf says where). */
int ctl_state_load(ctl_state *s, const char *path, char *errbuf, size_t cap);

/* Reconnect delay for the given attempt (0 = first retry): d = initial_ms doubled per attempt,
 * capped at max_ms, then +-20 % jitter: d * (0.8 + 0.4 * rand01), rand01 in [0, 1). Pure. */
int64_t ctl_backoff_ms(unsigned attempt, int64_t initial_ms, int64_t max_ms, double rand01);

#ifdef __cplusplus
}
#endif

#endif /* CTL_STATE_H */
