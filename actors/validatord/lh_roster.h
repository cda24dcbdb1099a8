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

    A roster can also be filled from elsewhere (validatord loads one from
    a catalogued dataset through queryd, lh_roster_dataset): create it with
    lh_roster_new_external, add workers to an lh_roster_builder_t and swap
    them in with lh_roster_install.

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
typedef struct _lh_roster_builder_t lh_roster_builder_t;

//  The fields of a worker, as lh_roster_builder_add takes them
typedef enum {
    LH_ROSTER_ID,                       //  candidate_id (required)
    LH_ROSTER_NAME,                     //  name
    LH_ROSTER_CITY,                     //  city
    LH_ROSTER_STATE,                    //  state
    LH_ROSTER_ROLE,                     //  role
    LH_ROSTER_STATUS,                   //  status (absent = "active")
    LH_ROSTER_BLACKLIST,                //  blacklisted clients, one cell
    LH_ROSTER_FIELDS                    //  number of fields
} lh_roster_field_t;

//  Load the roster from a JSONL file. path NULL or "" gives an empty roster
//  that never reloads. Returns NULL on error with *error_p set to a
//  sentence the caller frees ("roster.jsonl:12: candidate_id missing").
lh_roster_t *
    lh_roster_new (const char *path, char **error_p);

//  An empty roster filled from elsewhere with lh_roster_install. It never
//  reloads by itself; lh_roster_loaded is false until the first install.
lh_roster_t *
    lh_roster_new_external (void);

//  Has a roster been loaded? Always true for a file roster (or none).
bool
    lh_roster_loaded (lh_roster_t *self);

//  Replace the roster with the builder's workers, atomically for readers.
//  Destroys the builder and nulls the caller's pointer.
void
    lh_roster_install (lh_roster_t *self, lh_roster_builder_t **builder_p);

//  Start a new set of workers, sized for about expected of them
lh_roster_builder_t *
    lh_roster_builder_new (size_t expected);

//  Destroy a builder and the workers it holds; nulls the caller's pointer
void
    lh_roster_builder_destroy (lh_roster_builder_t **self_p);

//  Add one worker from LH_ROSTER_FIELDS values with their sizes in bytes
//  (not NUL-terminated; values [field] NULL = absent: "" or, for status,
//  "active"). The blacklist cell is a JSON array of strings or client ids
//  separated by , ; or | (blanks trimmed). A later id replaces an earlier
//  one. Copies everything into the builder's arena (no allocation per
//  worker). Returns NULL, or a static sentence naming what is wrong.
const char *
    lh_roster_builder_add (lh_roster_builder_t *self, const char *const *values,
                           const size_t *sizes);

//  Workers in the builder so far
size_t
    lh_roster_builder_size (lh_roster_builder_t *self);

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
