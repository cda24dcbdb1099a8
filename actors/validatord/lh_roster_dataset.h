/*  =========================================================================
    lh_roster_dataset - keep a roster loaded from a catalogued dataset

    validatord's roster can be a dataset (config validatord/roster_dataset)
    instead of a JSONL file. A follower thread with its own bus client:

    - asks catalogd.get for the dataset's manifest (its first object key is
      the version) and maps its columns to the roster fields;
    - reads the rows with queryd.sql in ranges of rowid
      (SELECT rowid, ... WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid),
      about validatord/roster_page_rows each, two in flight, parsed in
      range order (queryd cuts a page at queryd/row_max or queryd/reply_max
      and says truncated: the range continues after the last rowid
      received), walking each reply's msgpack in place into a roster
      builder (no allocation per row);
    - swaps the new roster in (lh_roster_install) only when every page
      loaded: a failed load keeps the previous roster;
    - reloads when catalog.changed names the dataset (subscribed on its
      client; checked 500 ms later so queryd sees the change first) or when
      catalogd.get, polled every validatord/roster_poll_ms, shows another
      object key. Not a worker thread, so a load never blocks a request.

    Column mapping (names compared ignoring case):

        candidate_id   candidate_id, else worker_id      (required)
        name           name
        city, state, role, status                        (status absent = active)
        blacklisted_clients  blacklisted_clients, else blacklist
                       a JSON array text, or ids separated by , ; or |

    validatord/roster_columns overrides it: "candidate_id=emp_no,name=full".
    Integer ids become their decimal text, so ids match as in the file.
    =========================================================================
*/

#ifndef LH_ROSTER_DATASET_H_INCLUDED
#define LH_ROSTER_DATASET_H_INCLUDED

#include "lh_roster.h"
#include "lh_client.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_roster_dataset_t lh_roster_dataset_t;

//  Start following the dataset named by validatord/roster_dataset into
//  roster (borrowed, made with lh_roster_new_external; it must outlive the
//  follower). Waits up to validatord/roster_timeout_ms for the first load
//  to finish or fail (a failure is logged and retried; validatord answers
//  503 for roster checks until one succeeds). Returns NULL with *error_p
//  set (a static sentence) if the settings are unusable.
lh_roster_dataset_t *
    lh_roster_dataset_new (lh_roster_t *roster, const lh_link_t *link,
                           lh_config_t *config, const char **error_p);

//  Stop the follower; nulls the caller's pointer
void
    lh_roster_dataset_destroy (lh_roster_dataset_t **self_p);

//  Dataset name followed (borrowed)
const char *
    lh_roster_dataset_name (lh_roster_dataset_t *self);

//  Map a dataset's columns to roster fields: map [field] is the column's
//  index, or -1 when absent. override is "" or "field=column,...". Returns
//  0, or -1 with *error_p set to a sentence the caller frees.
int
    lh_roster_dataset_map (const char *const *columns, size_t count,
                           const char *override, int *map, char **error_p);

//  Self test of this class
void
    lh_roster_dataset_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
