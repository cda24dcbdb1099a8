/*  =========================================================================
    lh_distill - distilld's stages over a knowledge-base root directory

    The files (docs/distilld.md "Layout"):

        ROOT/data/_kb/SOURCE.jsonl              the twelve sources (input)
        ROOT/eval/tasks.jsonl                   the evaluation set (input)
        ROOT/evidence/YYYY/MM/DD/SOURCE.jsonl   evidence records
        ROOT/state/evidence_index.sqlite        (source, sig_hash) seen
        ROOT/state/lock                         one writing stage at a time
        ROOT/reports/distillation/runs.jsonl    runs, oldest first
        ROOT/reports/distillation/RUN_ID/       materialize.json score.json
                                                scored.jsonl export.json
                                                drift.json summary.json
        ROOT/exports/rag/playbooks.jsonl        RAG corpus
        ROOT/exports/sft/accepted.jsonl         SFT set (accepted only)
        ROOT/exports/preference/pairs.jsonl     preference pairs

    Each stage returns its receipt (a new JSON object, also written under
    the run's directory and merged into its summary.json), or NULL with
    the error filled in for the caller to answer. The stages read and write
    files only; the clock is read for run ids and receipt times, never for
    what goes into evidence or exports. A stage that writes takes
    ROOT/state/lock (flock); a second one at the same time gets 503 busy.

        lh_distill_t *kb = lh_distill_new (&opts);
        lh_distill_error_t error;
        lh_distill_args_t args = { .recorded_at = NULL };
        json_t *receipt = lh_distill_materialize (kb, &args, &error);
        ...
        lh_distill_destroy (&kb);
    =========================================================================
*/

#ifndef LH_DISTILL_H_INCLUDED
#define LH_DISTILL_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "lh_distill_rules.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_DISTILL_RUN_ID_MAX   64      //  longest run id
#define LH_DISTILL_TOP_K        8       //  replay: hits retrieved
#define LH_DISTILL_EXEMPLARS    3       //  replay: accepted exemplars used
#define LH_DISTILL_WARNINGS     2       //  replay: partial warnings used
#define LH_DISTILL_STEPS_MAX    12      //  replay: validation steps kept

typedef struct _lh_distill_t lh_distill_t;

//  Settings (strings are copied)
typedef struct {
    const char *root;                   //  knowledge-base root directory
    int64_t schema_version;             //  the schema_version rows may carry
    int64_t line_max;                   //  longest source line, bytes
    int64_t batch_rows;                 //  rows between commits and progress
    const char *eval_set;               //  evaluation set file, relative to root
    int64_t warn_pct;                   //  drift: warn over this swing
    int64_t alert_pct;                  //  drift: alert over this swing
} lh_distill_opts_t;

//  Why a stage failed: a SPEC status, an error kind and a sentence
typedef struct {
    uint32_t status;                    //  400, 404, 409, 500, 503, 504
    char kind [48];                     //  "schema_version_mismatch", ...
    char field [32];                    //  the request field at fault, or ""
    char reason [768];                  //  for the person who asked
} lh_distill_error_t;

//  Progress of a long stage, called between batches with a small object
//  (borrowed). Return 0 to go on, -1 to stop (the deadline passed).
typedef int (lh_distill_progress_fn) (void *arg, const json_t *progress);

//  Arguments of a stage; NULL/0 fields take their defaults
typedef struct {
    const char *run_id;                 //  run to write under; NULL = new
                                        //  (export, drift: the latest scored)
    const char *recorded_at;            //  materialize: RFC 3339 for provenance
    const char *since;                  //  score: first day, "YYYY-MM-DD"
    const char *until;                  //  score: last day, inclusive
    lh_distill_progress_fn *progress;   //  or NULL
    void *progress_arg;                 //  its argument
} lh_distill_args_t;

//  Create the stages over opts->root (created if missing)
lh_distill_t *
    lh_distill_new (const lh_distill_opts_t *opts);

//  Destroy; nulls the caller's pointer
void
    lh_distill_destroy (lh_distill_t **self_p);

//  The root directory (borrowed)
const char *
    lh_distill_root (lh_distill_t *self);

//  Is text a valid run id: 1..64 of [A-Za-z0-9._-], not starting with '.'
bool
    lh_distill_run_id_valid (const char *text);

//  The stages. Each returns its receipt or NULL with *error.
json_t *
    lh_distill_materialize (lh_distill_t *self, const lh_distill_args_t *args,
                            lh_distill_error_t *error);
json_t *
    lh_distill_score (lh_distill_t *self, const lh_distill_args_t *args,
                      lh_distill_error_t *error);
json_t *
    lh_distill_export (lh_distill_t *self, const lh_distill_args_t *args,
                       lh_distill_error_t *error);
json_t *
    lh_distill_drift (lh_distill_t *self, const lh_distill_args_t *args,
                      lh_distill_error_t *error);

//  The runs, oldest first: {runs: [{run_id, created_at, stages: [..]}],
//  count}
json_t *
    lh_distill_runs (lh_distill_t *self, lh_distill_error_t *error);

//  A run's summary.json, or NULL (404)
json_t *
    lh_distill_summary (lh_distill_t *self, const char *run_id, lh_distill_error_t *error);

//  Replay's retrieval over the RAG export: {hits: [{id, task, category,
//  similarity}], exemplars: [{task, answer, similarity}], warnings:
//  [{task, answer, similarity}], steps: [text]}. Never fails: a missing
//  export retrieves nothing.
json_t *
    lh_distill_retrieve (lh_distill_t *self, const char *task);

//  The replay prompt for a task and a retrieval (NULL: no retrieval);
//  caller frees
char *
    lh_distill_prompt (const char *task, const json_t *retrieval);

//  Self test of this class
void
    lh_distill_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
