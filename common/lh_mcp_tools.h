/*  =========================================================================
    lh_mcp_tools - the tools the MCP server offers, declared in one table

    Each tool is one row of s_tools in lh_mcp_tools.c: its name, a
    description a model can act on, the JSON Schema of its arguments (and
    of its structured result), the bus call it makes and its deadline key.
    Most tools send their arguments to the bus as they are; a row may name
    a plan function that builds the body (or several calls in turn) and a
    shape function that turns the reply into the structured result.
    Adding a tool is one row (and a plan/shape function when needed):

        { "pathway_stats", "Pathway statistics", "Count the traces ...",
          S_NO_ARGS, NULL, "pathwayd", "stats", NULL, S_READ_ONLY, NULL, NULL },

    The arguments are checked against the input schema before any call
    (lh_mcp_schema_check, a subset of JSON Schema 2020-12: type, enum,
    properties, required, additionalProperties: false, items, minItems,
    maxItems, minLength, maxLength, minimum, maximum); a refusal, like a
    bus error, is a tool result with isError, never a protocol error.
    =========================================================================
*/

#ifndef LH_MCP_TOOLS_H_INCLUDED
#define LH_MCP_TOOLS_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Tool hints (MCP ToolAnnotations)
#define LH_MCP_READ_ONLY    (1u << 0)   //  changes nothing
#define LH_MCP_DESTRUCTIVE  (1u << 1)   //  may replace or remove data
#define LH_MCP_IDEMPOTENT   (1u << 2)   //  the same call twice does no more
#define LH_MCP_OPEN_WORLD   (1u << 3)   //  reaches outside the lakehouse (a model)
#define LH_MCP_LOCAL        (1u << 4)   //  answered without the bus (fixtures)

//  The bus calls of one tool call, planned step by step
typedef struct {
    const json_t *args;                 //  the tool's arguments (borrowed, checked)
    int step;                           //  0 for the first call, then 1, ...
    const char *service;                //  out: the call to make
    const char *op;                     //  out: its op
    json_t *body;                       //  out: its body (owned by the plan), NULL = none
    char *error;                        //  out: why the call cannot be made (owned)
} lh_mcp_plan_t;

//  Plan the first call (step 0) from the arguments, or the next one from
//  the previous reply (step > 0, reply its 2xx body). Returns 1 when a
//  call is planned, 0 when the tool is done (the last reply is its
//  result), -1 with plan->error set to refuse.
typedef int (lh_mcp_plan_fn) (lh_mcp_plan_t *plan, const json_t *reply);

//  The structured result from the final reply: a new object, or NULL
//  (with *error_p) when the reply has not the expected shape
typedef json_t *(lh_mcp_shape_fn) (const json_t *reply, char **error_p);

//  One tool
typedef struct {
    const char *name;                   //  "query_sql"
    const char *title;                  //  "Query the lakehouse with SQL"
    const char *description;            //  what it does, for a model
    const char *input_schema;           //  JSON Schema text of the arguments
    const char *output_schema;          //  JSON Schema text of the result, or NULL
    const char *service;                //  bus service of the call
    const char *op;                     //  its op
    const char *timeout_key;            //  config key of the deadline, NULL: mcp/timeout_ms
    unsigned hints;                     //  LH_MCP_*
    lh_mcp_plan_fn *plan;               //  NULL: one call, the arguments as body
    lh_mcp_shape_fn *shape;             //  NULL: the reply object as it is
} lh_mcp_tool_t;

//  The tools: the one at index, NULL past the end. With fixtures, the
//  conformance suite's fixture tools come after ours (mcp/test_tools).
const lh_mcp_tool_t *
    lh_mcp_tools_at (size_t index, bool fixtures);

//  Check value against a schema (the subset above). Returns 0, or -1 with
//  *error_p a sentence naming the argument ("arguments.k: must be an
//  integer"), the caller's to free.
int
    lh_mcp_schema_check (const json_t *schema, const json_t *value, char **error_p);

//  The text of a fixture tool's result and whether it is an error
const char *
    lh_mcp_tools_fixture (const lh_mcp_tool_t *tool, bool *is_error);

//  Self test of this class
void
    lh_mcp_tools_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
