/*  =========================================================================
    workflowd - the workflow runner: DAGs of bus calls (SPEC 5.9
    "Workflow runner", "Workflow definitions"); docs/workflows.md has the
    details

    A definition (lh_wfdef: JSON or YAML) names nodes, each one bus call
    service.op whose input is built from the run's inputs and the outputs
    of the nodes it needs. One runner thread (its own bus client) executes
    every run: it sends each node's call as soon as all its needs have
    succeeded, so independent nodes are in flight together; a node that
    fails (any status >= 400, no reply by its timeout_ms, a template with
    no value) fails the run and marks every node that needs it, directly
    or not, skipped; the others go on. A node with retries is retried
    (after retry_backoff_ms, doubling) on 429 and 5xx only, and only if
    its op is listed in workflowd/idempotent; every attempt carries the
    idempotency key "wf-RUN_ID-NODE". Each node's end is one audit row
    {seq, node, call, status, started_ms, ended_ms, attempts, error?,
    output_sha256?}, committed to LMDB (workflowd/dir) with the run record
    as it happens. A definition with "on": TOPIC is started by every
    event whose topic starts with TOPIC, with the event as inputs.event.

    Ops (bodies are msgpack; shown as JSON):

    workflow_put    {definition: MAP | "YAML or JSON text"} -> 201 (new) or
                    200 (replaced) {name, version, nodes, on?, inputs}
    workflow_get    {name} -> 200 {name, version, updated_ms, definition}
    workflow_list   {} -> 200 {workflows: [{name, version, updated_ms,
                    nodes, on?}], count}
    workflow_delete {name} -> 200 {name, deleted: true}
    workflow_run    {name | definition, inputs?: MAP, wait?: bool (true)}
                    -> 201 {run_id, status: running, ...} when wait is
                    false; else 200 once the run ended (status succeeded
                    or failed), or just before the caller's deadline
                    (status running: ask run_get later)
    run_get         {run_id, outputs?: bool (true)} -> 200 run {run_id,
                    name, status, trigger, trace, started_ms, ended_ms?,
                    inputs, nodes: {ID: {status, call, started_ms?,
                    ended_ms?, attempts, error?, output_sha256?, output?}},
                    audit: [row]}
    run_list        {name?, status?, before?: RUN_ID, limit?: 1..1000
                    (100)} -> 200 {runs: [summary], count, truncated, next?}
                    newest first
    stats           {} -> 200 {active, started, succeeded, failed,
                    triggered, trigger_dropped, ...}

    Errors: 400 bad_body / bad_field and, for a definition that does not
    load, 400 with kind cycle, missing_dependency, unknown_service,
    unknown_op, unknown_node, unknown_input, not_needed, not_idempotent,
    bad_template or bad_definition (field "definition", the reason naming
    the node and what is wrong); 400 missing_input (field "inputs"); 404
    no_such_workflow / no_such_run; 413 too_large (a definition past
    workflowd/definition_max); 503 busy (workflowd/active_max runs at once).

    Events published: workflow.run {run_id, name, status, trigger} when a
    run starts and ends; workflow.node {run_id, name, node, status,
    started_ms, ended_ms, error?} when a node ends.
    =========================================================================
*/

#ifndef WORKFLOWD_H_INCLUDED
#define WORKFLOWD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The workflowd service, for lh_service_start and the registry
extern const lh_service_t lh_workflowd_service;

//  Self test of this class
void
    lh_workflowd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
