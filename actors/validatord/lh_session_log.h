/*  =========================================================================
    lh_session_log - the session log: one JSONL row per iterate call

    Rows follow schema session.iterate.v1 (docs/session_log.md). Each row
    is one line handed to one write(2) on a file opened with O_APPEND, so
    rows appended at once by several threads or processes never
    interleave. An append never fails the caller's request: a failure is
    logged and counted, and the call returns -1 for the caller's
    information only. An empty path turns the log off.

        lh_session_log_t *log = lh_session_log_new ("/var/lh/sessions.jsonl");
        json_t *row = json_pack ("{s:s}", "schema", "session.iterate.v1");
        lh_session_log_append (log, row);
        json_decref (row);
        lh_session_log_destroy (&log);
    =========================================================================
*/

#ifndef LH_SESSION_LOG_H_INCLUDED
#define LH_SESSION_LOG_H_INCLUDED

#include <czmq.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_SESSION_SCHEMA   "session.iterate.v1"

typedef struct _lh_session_log_t lh_session_log_t;

//  Create a session log writing to path (created on the first append,
//  mode 0640); NULL or "" gives a log that is off
lh_session_log_t *
    lh_session_log_new (const char *path);

//  Destroy; nulls the caller's pointer
void
    lh_session_log_destroy (lh_session_log_t **self_p);

//  Is the log on?
bool
    lh_session_log_enabled (lh_session_log_t *self);

//  The file path, or "" when off
const char *
    lh_session_log_path (lh_session_log_t *self);

//  Append a row (not taken) as one line. Returns 0, or -1 if it could not
//  be written (logged with the trace id; never an error for the request).
int
    lh_session_log_append (lh_session_log_t *self, json_t *row, const char *trace);

//  Appends that failed since the log was created
uint64_t
    lh_session_log_failures (lh_session_log_t *self);

//  Write the current time as RFC 3339 UTC with microseconds
//  ("2026-11-21T06:40:01.123456Z") into buffer of at least 32 bytes
void
    lh_session_log_timestamp (char *buffer, size_t size);

//  Self test of this class
void
    lh_session_log_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
