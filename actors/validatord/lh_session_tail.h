/*  =========================================================================
    lh_session_tail - the newest rows of the session log, read from its end

    validatord's `sessions` op (GET /v1/iterate/sessions) answers with the
    newest rows of the session log (docs/session_log.md) without reading
    the whole file: at most scan_max bytes from its end are read, and the
    lines in them parsed from the last one back. Rows are passed on as
    they are (any JSON object): the reader knows nothing of their fields
    but "timestamp", which `since` is compared with (RFC 3339 UTC times
    sort as text).

        lh_session_tail_t tail;
        json_t *rows;
        if (lh_session_tail_read (path, 50, NULL, 4 << 20, &rows, &tail, &error) == 0)
            ... rows newest first, tail.truncated, tail.skipped ...
    =========================================================================
*/

#ifndef LH_SESSION_TAIL_H_INCLUDED
#define LH_SESSION_TAIL_H_INCLUDED

#include <czmq.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

//  What a read found besides its rows
typedef struct {
    bool truncated;                     //  older rows were left: the limit, or scan_max
    size_t skipped;                     //  lines in the scanned bytes that are not a JSON object
    uint64_t scanned;                   //  bytes read from the end
    uint64_t size;                      //  the log's size
} lh_session_tail_t;

//  Read the newest rows of the JSONL log at path, newest first: at most
//  limit rows, only those whose "timestamp" is after since (NULL: all),
//  reading at most scan_max bytes back from the end (a line cut by that
//  start is left out). A log that does not exist has no rows. Returns 0
//  with *rows_p (a new JSON array) and *tail, or -1 with *error_p (caller
//  frees) when the file cannot be read.
int
    lh_session_tail_read (const char *path, size_t limit, const char *since,
                          size_t scan_max, json_t **rows_p, lh_session_tail_t *tail,
                          char **error_p);

//  Self test of this class
void
    lh_session_tail_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
