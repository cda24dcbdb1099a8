/*  =========================================================================
    lh_wfdef - a workflow definition: parsed, checked, and its node inputs
    built from templates (SPEC 5.9 "Workflow definitions"; docs/workflows.md)

    A definition is a map (JSON, or the same structure in YAML):

        {"name": N, "on": TOPIC?, "description": TEXT?,
         "inputs": [NAME, ..] | {NAME: DEFAULT, ..}?,
         "nodes": {ID: {"call": "service.op", "input": VALUE?,
                        "needs": [ID, ..]?, "timeout_ms": n?, "retries": n?,
                        "description": TEXT?}}}

    lh_wfdef_load refuses, with a kind and a sentence naming what is
    wrong: a key it does not know, a cycle (the path, "a -> b -> a"), a
    need that is not a node (missing_dependency), a service the bus does
    not know (unknown_service) or an op its workers do not offer
    (unknown_op), a template naming a node or input that does not exist
    (unknown_node, unknown_input), a template naming a node its node does
    not (transitively) need (not_needed), retries on an op that is not
    idempotent (not_idempotent), and any malformed value.

    Templates, inside the strings of a node's input (map keys are never
    templates):
        ${inputs.NAME}              a workflow input
        ${inputs.NAME.PATH}         a value inside it
        ${nodes.ID.output}          a node's output (its reply body)
        ${nodes.ID.output.PATH}     a value inside it
    PATH is dotted; a segment that is a number indexes an array. A string
    that is exactly one template becomes that value with its type; a
    template inside a longer string is replaced by the value as text
    (strings as they are, numbers in decimal, true/false/null, maps and
    arrays as compact JSON). "$${" writes a literal "${".

        lh_wfcheck_t check = { .services = services, .idempotent = "queryd.sql" };
        lh_wferror_t error;
        lh_wfdef_t *def = lh_wfdef_load (object, &check, &error);
        if (!def)
            printf ("%s: %s\n", error.kind, error.reason);
    =========================================================================
*/

#ifndef LH_WFDEF_H_INCLUDED
#define LH_WFDEF_H_INCLUDED

#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_WF_ID_MAX        64          //  longest workflow name or node id
#define LH_WF_DEPTH_MAX     32          //  deepest nesting of a definition

//  What a definition is checked against
typedef struct {
    //  Service name -> its ops "a,b,c" ("" when no worker says), from
    //  broker.services; NULL skips the service check (a stored definition)
    zhashx_t *services;
    const char *idempotent;             //  "svc.op,svc.*,..." that may be retried
    size_t nodes_max;                   //  most nodes (0: 256)
    uint32_t retries_max;               //  most retries a node may ask (0: none)
    uint32_t timeout_max_ms;            //  largest timeout_ms (0: any)
} lh_wfcheck_t;

//  Why a definition or a run was refused
typedef struct {
    char kind [32];                     //  "cycle", "unknown_service", ...
    char reason [512];                  //  a sentence naming what and where
} lh_wferror_t;

typedef struct _lh_wfdef_t lh_wfdef_t;

//  Parse definition text, YAML or JSON (JSON first when it starts with
//  '{', then YAML: a flow-style map), into msgpack (the map). YAML: the 1.2 core schema (on, yes and no stay
//  strings), one document, no aliases or custom tags, keys unique.
//  Returns 0, or -1 with error set.
int
    lh_wfdef_parse_text (const char *text, size_t size, lh_pack_t *pack,
                         lh_wferror_t *error);

//  Load and check a definition (a map). Returns a new definition, or
//  NULL with error set.
lh_wfdef_t *
    lh_wfdef_load (const msgpack_object *definition, const lh_wfcheck_t *check,
                   lh_wferror_t *error);

//  Destroy a definition; nulls the caller's pointer
void
    lh_wfdef_destroy (lh_wfdef_t **self_p);

//  The definition as msgpack, as it was given (borrowed)
const void *
    lh_wfdef_packed (lh_wfdef_t *self, size_t *size);

const char *lh_wfdef_name (lh_wfdef_t *self);
//  The trigger topic prefix, or NULL
const char *lh_wfdef_on (lh_wfdef_t *self);
//  Number of nodes; nodes are indexed 0 .. count - 1 in the order of
//  their ids
size_t lh_wfdef_count (lh_wfdef_t *self);
const char *lh_wfdef_node_id (lh_wfdef_t *self, size_t index);
const char *lh_wfdef_node_svc (lh_wfdef_t *self, size_t index);
const char *lh_wfdef_node_op (lh_wfdef_t *self, size_t index);
//  The node's direct needs, as node indexes
const size_t *lh_wfdef_node_needs (lh_wfdef_t *self, size_t index, size_t *count);
//  Its timeout_ms (0: not given) and retries
uint32_t lh_wfdef_node_timeout (lh_wfdef_t *self, size_t index);
uint32_t lh_wfdef_node_retries (lh_wfdef_t *self, size_t index);
//  Index of a node id, or -1
int lh_wfdef_node_index (lh_wfdef_t *self, const char *id);

//  Pack the run's inputs: the declared defaults, overlaid by given (a map,
//  or NULL). Returns 0, or -1 with error set (given is not a map, or a
//  required input is missing: kind missing_input).
int
    lh_wfdef_inputs (lh_wfdef_t *self, const msgpack_object *given, lh_pack_t *pack,
                     lh_wferror_t *error);

//  Pack the input of node index from the run's inputs (a map) and the
//  outputs of the nodes it needs (outputs [i]: node i's reply body, or
//  NULL). Returns 0, or -1 with error set (a path with no value).
int
    lh_wfdef_node_input (lh_wfdef_t *self, size_t index, const msgpack_object *inputs,
                         const msgpack_object *const *outputs, lh_pack_t *pack,
                         lh_wferror_t *error);

//  The required input names, comma-separated (borrowed, "" for none)
const char *
    lh_wfdef_required (lh_wfdef_t *self);

//  Is svc.op in a list of "svc.op", "svc.*" and "*" patterns?
bool
    lh_wfdef_listed (const char *list, const char *svc, const char *op);

//  Self test of this class
void
    lh_wfdef_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
