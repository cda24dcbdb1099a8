/*  =========================================================================
    lh_roster - the worker roster that validators check artifacts against

    The roster is a JSONL file, one worker per line:

        {"candidate_id": "W-1042", "name": "Ann Lee", "city": "Toledo",
         "state": "OH", "role": "forklift", "status": "active",
         "blacklisted_clients": ["C-7"]}

    candidate_id is required (a string or an integer); the other fields may
    be absent (empty), status defaults to "active". Ids are matched without
    regard to ASCII case. A later line with the same id replaces an earlier
    one. A line that is not such an object fails the load, naming the line;
    blank lines are skipped.

    Loaded once, then lh_roster_refresh reloads the file when its mtime,
    size or inode changed (the previous roster stays in use if the new file
    does not load). Lookups are made under a read lock, so any number of
    workers validate at once while a reload swaps the table in:

        lh_roster_refresh (roster);
        lh_roster_read_lock (roster);
        const lh_worker_t *worker = lh_roster_lookup (roster, "w-1042");
        ...
        lh_roster_read_unlock (roster);
    =========================================================================
*/

#ifndef LH_ROSTER_H_INCLUDED
#define LH_ROSTER_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One worker; every string is non-NULL and NUL-terminated
typedef struct {
    const char *candidate_id;           //  id as written in the file
    const char *name;                   //  full name
    const char *city;                   //  home city
    const char *state;                  //  home state
    const char *role;                   //  role (forklift, picker, ...)
    const char *status;                 //  active, inactive, ...
    const char *blacklisted;            //  client ids, each NUL-terminated, then ""
} lh_worker_t;

typedef struct _lh_roster_t lh_roster_t;

//  Load the roster from a JSONL file. path NULL or "" gives an empty roster
//  that never reloads. Returns NULL on error with *error_p set to a
//  sentence the caller frees ("roster.jsonl:12: candidate_id missing").
lh_roster_t *
    lh_roster_new (const char *path, char **error_p);

//  Destroy the roster; nulls the caller's pointer
void
    lh_roster_destroy (lh_roster_t **self_p);

//  Reload the file if it changed since the last load. Returns 1 if it
//  was reloaded, 0 if unchanged, -1 if the new file failed to load (the
//  error is logged and the previous roster stays).
int
    lh_roster_refresh (lh_roster_t *self);

//  Take / release the read lock around lookups
void
    lh_roster_read_lock (lh_roster_t *self);
void
    lh_roster_read_unlock (lh_roster_t *self);

//  Find a worker by id, ignoring ASCII case; NULL if absent. Valid while
//  the read lock is held.
const lh_worker_t *
    lh_roster_lookup (lh_roster_t *self, const char *candidate_id);

//  Number of workers (read lock held)
size_t
    lh_roster_size (lh_roster_t *self);

//  Does this worker's blacklist name client_id (ignoring ASCII case)?
bool
    lh_worker_blacklisted (const lh_worker_t *worker, const char *client_id);

//  Self test of this class
void
    lh_roster_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
