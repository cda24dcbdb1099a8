/*  =========================================================================
    validatord - is the model's output real? (SPEC 5.8, docs/validatord.md)

    Ops (bodies are msgpack; shown here as JSON):

    validate {kind: fill|email|sms|playbook, artifact, context?}
        -> 200 {kind, valid: true, warnings: [...]}
           422 {"Schema": {field, reason}} | {"Completeness": {reason}} |
               {"Consistency": {reason}} | {"Policy": {reason}}
           400 unknown kind or bad input (field named)
        context is merged into artifact._context (context keys win).

    iterate {kind, prompt, system?, model, context?, max_iterations (3),
             temperature (0.2), max_tokens (4096), trace_id?}
        -> 200 {artifact, validation, iterations, history, trace_id}
           422 {error: {kind: "max_iter_exhausted", reason, last}, iterations,
                history, trace_id}
           502 {error: {kind: "infra_error", reason}, iterations, history,
                trace_id} when chatd.chat fails
        Each round calls chatd.chat over the bus, extracts the JSON object
        (lh_extract_json) and validates it. No JSON: the next round says
        "your response wasn't valid JSON"; a 422: the next round carries
        the error. Only the latest failed attempt rides in the prompt, cut
        to validatord/prompt_max_tokens. Every call appends one row to the
        session log (docs/session_log.md). The trace id is the body's
        trace_id, else the bus tr, else a minted one.

    The roster is a JSONL file (validatord/roster) or a catalogued dataset
    read through queryd (validatord/roster_dataset, lh_roster_dataset.h);
    until a dataset roster has loaded, checks that need it answer 503
    roster_unavailable.
    =========================================================================
*/

#ifndef VALIDATORD_H_INCLUDED
#define VALIDATORD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The validatord service, for lh_service_start and the registry
extern const lh_service_t lh_validatord_service;

//  Self test of this class
void
    lh_validatord_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
