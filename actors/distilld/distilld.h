/*  =========================================================================
    distilld - the learning loop's evidence (SPEC 5.9, docs/distilld.md)

    One actor over a knowledge-base root (distilld/root, default
    DATA_DIR/kb; lh_distill.h shows the layout). Ops (bodies are msgpack;
    shown as JSON). Every op refuses a field it does not know (400 naming
    it); a refused request writes nothing.

    materialize {run_id?, recorded_at?, progress?}
        -> 200 receipt {stage, run_id, read, written, skipped, deduped,
           skipped_reasons, sources {SOURCE: {...}}, ...}
           409 schema_version_mismatch (nothing written)
    score       {run_id?, since?, until?, progress?}
        -> 200 receipt {categories {accepted, partially_accepted,
           rejected: {count, share}}, anchor_grounding {mean}, ...}
    export      {run_id?, progress?}     (default: the latest scored run)
        -> 200 receipt {rag, sft, preference: {file, written, held_back,
           skipped}, held_back, eval_set {file, present, tasks}}
           409 not_scored, 404 no_such_run, 422 bad_eval_set
    drift       {run_id?}                (default: the latest scored run)
        -> 200 {status: baseline|ok|warn|alert, previous_run_id,
           categories {NAME: {share_pct, swing_pct, status, ...}}}
    run         {run_id?, recorded_at?, since?, until?, progress?}
        -> 200 {run_id, materialize, score, export, drift} (the four
           receipts; the first failing stage answers instead)
    runs        {} -> {runs: [{run_id, created_at, stages}], count}
    report      {run_id} -> the run's summary.json, or 404
    replay      {task, local_only?, allow_escalation?, no_retrieval?,
                 dry_run?}
        -> 200 {replay_id, outcome: passed|failed|dry_run, passed,
           escalated, answer, attempts [{tier, model, provider, gate}],
           retrieval, prompt, ...}; one replay_run.v1 row appended
           503/500 when chatd fails (the row is appended too)

    With progress: true, long stages send PART bodies {stage, phase, read,
    written, source?} between batches (the CLI shows them). Writing stages
    take ROOT/state/lock: a second one at once gets 503 busy. A stage that
    reaches the caller's deadline stops between batches with 504.
    =========================================================================
*/

#ifndef DISTILLD_H_INCLUDED
#define DISTILLD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_REPLAY_SCHEMA    "replay_run.v1"

//  The distilld service, for lh_service_start and the registry
extern const lh_service_t lh_distilld_service;

//  Self test of this class
void
    lh_distilld_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
