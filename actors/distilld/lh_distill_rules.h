/*  =========================================================================
    lh_distill_rules - distilld's pure functions: no I/O, no clock

    Everything that decides what a record says lives here, so that it is
    tested on its own and the same input always gives the same output:

    - the row's own time (recorded_at, created_at, timestamp, ts: RFC 3339
      or epoch seconds / milliseconds) normalised to RFC 3339 UTC;
    - the task of a row, its normal form and its hash;
    - the transform of one source row into one evidence record;
    - the score of an evidence record: category and anchor_grounding;
    - drift between two category distributions;
    - tokens, token Jaccard, validation-step lines and the replay gate.

    docs/distilld.md states every rule written here.

        lh_distill_skip_t skip;
        json_t *record = lh_distill_transform (row, "outcomes", 0, NULL, &skip);
        if (!record)
            ... skip says why (LH_DISTILL_NO_TIME, LH_DISTILL_BAD_TIME)
    =========================================================================
*/

#ifndef LH_DISTILL_RULES_H_INCLUDED
#define LH_DISTILL_RULES_H_INCLUDED

#include <czmq.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_DISTILL_SOURCES      12      //  knowledge-base sources
#define LH_DISTILL_EVIDENCE     "evidence.v1"

//  The twelve sources, in processing order; the first four are knowledge
//  (they ground anchors), the rest are runs
extern const char *lh_distill_sources [LH_DISTILL_SOURCES];
#define LH_DISTILL_KNOWLEDGE    4       //  sources [0..3] are knowledge

//  Index of a source name, or -1
int
    lh_distill_source_index (const char *name);

//  A row's time, normalised
typedef struct {
    int64_t seconds;                    //  Unix time, whole seconds (UTC)
    char text [48];                     //  "2026-01-02T03:04:05.25Z"
    char day [16];                      //  "2026-01-02" (UTC)
} lh_distill_time_t;

//  Parse a time value: an RFC 3339 date-time string (any offset, any
//  fraction up to 9 digits) or a number of epoch seconds, or of epoch
//  milliseconds when its magnitude is 1e11 or more. Returns 0, or -1.
int
    lh_distill_time_parse (const json_t *value, lh_distill_time_t *time);

//  Is text a calendar day "YYYY-MM-DD"?
bool
    lh_distill_day_valid (const char *text);

//  The row's own time: the first of recorded_at, created_at, timestamp,
//  ts that is present (not absent, not null). Returns 0; 1 when none is
//  present; -1 when the first present one does not parse. *field_p is the
//  field used (or NULL).
int
    lh_distill_row_time (const json_t *row, lh_distill_time_t *time, const char **field_p);

//  The task text of a row: the first non-empty string of task, prompt,
//  query, question, title (borrowed), or NULL
const char *
    lh_distill_row_task (const json_t *row);

//  The answer text of a row: the first non-empty string of answer,
//  response, output, content, text, summary, fix (borrowed), or NULL
const char *
    lh_distill_row_answer (const json_t *row);

//  A task's normal form (caller frees): ASCII letters lowercased, every
//  run of whitespace one space, none at either end
char *
    lh_distill_task_normalize (const char *task);

//  SHA-256 hex of the normal form (65 bytes with the NUL)
void
    lh_distill_task_hash (const char *task, char *hex);

//  Why a row was not transformed
typedef enum {
    LH_DISTILL_OK = 0,
    LH_DISTILL_NO_TIME,                 //  no timestamp field present
    LH_DISTILL_BAD_TIME,                //  the first one present does not parse
    LH_DISTILL_BAD_ROW                  //  not an object, or no canonical form
} lh_distill_skip_t;

//  The evidence record of one source row (a new object), or NULL with
//  *skip set. recorded_at: the caller's RFC 3339 time for provenance, or
//  NULL for the row's own. The record is
//  {schema, source, event_time, day, task, task_hash, row,
//   provenance {source_file, line_offset, sig_hash, recorded_at}}.
json_t *
    lh_distill_transform (const json_t *row, const char *source, uint64_t line_offset,
                          const char *recorded_at, lh_distill_skip_t *skip);

//  ---------------------------------------------------------------------
//  Scoring

typedef enum {
    LH_DISTILL_ACCEPTED = 0,
    LH_DISTILL_PARTIAL,
    LH_DISTILL_REJECTED,
    LH_DISTILL_CATEGORIES               //  how many
} lh_distill_category_t;

//  "accepted", "partially_accepted", "rejected"
extern const char *lh_distill_category_names [LH_DISTILL_CATEGORIES];

//  Is this anchor known (a knowledge record carries it)? 
typedef bool (lh_distill_known_fn) (void *arg, const char *anchor);

//  A record's score
typedef struct {
    lh_distill_category_t category;     //  its category
    double grounding;                   //  anchor_grounding, 0..1
    size_t anchors;                     //  anchors it names
    size_t grounded;                    //  how many are known
    const char *basis;                  //  "verdict", "score" or "anchors"
} lh_distill_score_t;

//  Score a source row. Returns 0 with *score, or 1 when the row is not
//  scorable (no verdict, no score, no anchors). known may be NULL (no
//  anchor is known).
int
    lh_distill_score_row (const json_t *row, lh_distill_known_fn *known, void *arg,
                      lh_distill_score_t *score);

//  The anchors a knowledge row provides: its id, fact_id, anchor, key
//  strings. Calls fn for each; returns how many.
size_t
    lh_distill_row_anchors (const json_t *row, void (*fn) (void *arg, const char *anchor),
                            void *arg);

//  ---------------------------------------------------------------------
//  Drift

typedef enum {
    LH_DRIFT_OK = 0,
    LH_DRIFT_WARN,
    LH_DRIFT_ALERT
} lh_drift_status_t;

//  "ok", "warn", "alert"
extern const char *lh_drift_status_names [3];

//  Compare two category distributions (counts). The swing of a category
//  is the change of its share in percentage points; over warn_pct is
//  warn, over alert_pct alert. Fills swing [] and status [] per category
//  and returns the worst status.
lh_drift_status_t
    lh_distill_drift_compare (const uint64_t *previous, const uint64_t *current,
                      double warn_pct, double alert_pct,
                      double *swing, lh_drift_status_t *status);

//  ---------------------------------------------------------------------
//  Tokens, retrieval and the gate

//  A set of tokens: lowercase runs of [a-z0-9], 2 characters or more,
//  common English words dropped; sorted and unique
typedef struct {
    char **items;                       //  the tokens
    size_t count;                       //  how many
} lh_distill_tokens_t;

//  Tokens of a text, added to self (which may already hold some)
void
    lh_distill_tokens_add (lh_distill_tokens_t *self, const char *text);
//  Forget all tokens
void
    lh_distill_tokens_reset (lh_distill_tokens_t *self);
//  |a n b| / |a u b|; 0 when both are empty
double
    lh_distill_jaccard (const lh_distill_tokens_t *a, const lh_distill_tokens_t *b);
//  Do a and b share a token?
bool
    lh_distill_tokens_share (const lh_distill_tokens_t *a, const lh_distill_tokens_t *b);

//  Is this line a validation step: after blanks, a bullet ("-", "*", "+")
//  or a number ("1." "2)"), does it start with verify, check, assert or
//  ensure (any case)? Sets *start to where the step's text begins.
bool
    lh_distill_step_line (const char *line, size_t size, size_t *start);

//  The gate's verdict on an answer
typedef struct {
    bool passed;                        //  all checks held
    bool long_enough;                   //  at least min_chars characters
    size_t chars;                       //  UTF-8 characters in the answer
    char hedge [128];                   //  the hedging phrase found, or 
    bool shares_step;                   //  shares a token with the steps
                                        //  (true when there are no steps)
} lh_distill_gate_t;

//  Check an answer: at least min_chars characters, none of the hedging
//  phrases (a comma-separated list, matched case-insensitively as whole
//  words), and a token shared with the steps when there are any
void
    lh_distill_gate (const char *answer, size_t min_chars, const char *hedges,
                     const lh_distill_tokens_t *steps, lh_distill_gate_t *gate);

//  Self test of this class
void
    lh_distill_rules_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
