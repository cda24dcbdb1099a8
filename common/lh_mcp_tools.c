/*  =========================================================================
    lh_mcp_tools - the tools the MCP server offers; see lh_mcp_tools.h

    The bodies each tool sends are the services' own (docs/catalogd.md,
    queryd.md, ingestd.md, embedd.md, vectord.md, matrixd.md,
    validatord.md, pathwayd.md, workflows.md).
    =========================================================================
*/

#include "lh_mcp_tools.h"
#include <czmq.h>

//  Schema pieces shared by several rows
#define S_NO_ARGS       "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"
#define S_KIND          "\"kind\":{\"type\":\"string\",\"enum\":[\"fill\",\"email\",\"sms\",\"playbook\"]," \
                        "\"description\":\"what the artifact is: fill, email, sms or playbook\"}"
#define S_CONTEXT       "\"context\":{\"type\":\"object\",\"description\":\"what the artifact must match: " \
                        "target_count, city, state, role, client_id, candidate_id\"}"
#define S_STRINGS       "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"
#define S_HITS_OUT      "{\"type\":\"object\",\"properties\":{\"hits\":{\"type\":\"array\",\"items\":" \
                        "{\"type\":\"object\"}},\"count\":{\"type\":\"integer\"}},\"required\":[\"hits\",\"count\"]}"

#define S_READ_ONLY     (LH_MCP_READ_ONLY | LH_MCP_IDEMPOTENT)
#define S_LONG          "mcp/long_timeout_ms"

static lh_mcp_plan_fn s_plan_search_vectors;
static lh_mcp_plan_fn s_plan_run_workflow;
static lh_mcp_shape_fn s_shape_hits;


//  The tools, in the order tools/list gives them
static const lh_mcp_tool_t s_tools [] = {
    {   "list_datasets", "List the datasets",
        "List every dataset in the lakehouse catalog: its name, dataset_id, schema (each "
        "column's name and type: BOOLEAN, BIGINT, DOUBLE, TIMESTAMP or VARCHAR), row_count, "
        "and when it was created and last updated (ms since the epoch). Call this first to "
        "learn which tables query_sql can read and what their columns are called.",
        S_NO_ARGS,
        "{\"type\":\"object\",\"properties\":{\"datasets\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
        "\"count\":{\"type\":\"integer\"}},\"required\":[\"datasets\",\"count\"]}",
        "catalogd", "list", NULL, S_READ_ONLY, NULL, NULL },

    {   "get_manifest", "Get a dataset's manifest",
        "Get the manifest of one dataset by its name: dataset_id, schema (column names and "
        "types), row_count, the storage objects that hold its table, and when it was created "
        "and last updated. Fails with no_such_dataset when no dataset has that name "
        "(list_datasets names them all).",
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"the dataset's name, as list_datasets gives it\"}},"
        "\"required\":[\"name\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"dataset_id\":{\"type\":\"string\"},"
        "\"schema\":{\"type\":\"array\"},\"row_count\":{\"type\":\"integer\"}},\"required\":[\"name\",\"dataset_id\"]}",
        "catalogd", "get", NULL, S_READ_ONLY, NULL, NULL },

    {   "query_sql", "Query the datasets with SQL",
        "Run one read-only SQL statement (SQLite dialect) over the catalogued datasets. Each "
        "dataset is a table named by its dataset name; JOINs across datasets work. Only "
        "SELECT and WITH statements are allowed: writes, schema changes, ATTACH and most "
        "PRAGMAs are refused. Bind values with params rather than pasting them into the "
        "text: an array binds ? placeholders in order, an object binds :name placeholders. "
        "At most limit rows come back (the server caps it); truncated is true when the "
        "statement had more rows than came back.",
        "{\"type\":\"object\",\"properties\":{\"sql\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"one SQL statement, e.g. SELECT city, count(*) FROM workers GROUP BY city\"},"
        "\"params\":{\"type\":[\"array\",\"object\"],\"description\":\"values for ? placeholders (an array) "
        "or :name placeholders (an object)\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,"
        "\"description\":\"most rows to return\"}},\"required\":[\"sql\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"columns\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"properties\":{\"name\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"}}}},"
        "\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"array\"}},\"row_count\":{\"type\":\"integer\"},"
        "\"truncated\":{\"type\":\"boolean\"}},\"required\":[\"columns\",\"rows\",\"row_count\"]}",
        "queryd", "sql", NULL, S_READ_ONLY, NULL, NULL },

    {   "ingest_csv", "Ingest a CSV file as a dataset",
        "Create a dataset, or replace its rows, from a CSV file that is already in the "
        "lakehouse object store under the key source (upload it first: HTTP PUT "
        "/v1/storage/KEY; `lakehouse ingest FILE --name N` uploads and ingests in one go). "
        "The first row is the header; each column's type is inferred (BOOLEAN, BIGINT, "
        "DOUBLE, TIMESTAMP, VARCHAR). Ingesting a name again with the same columns replaces "
        "its rows; with other columns it fails with schema_drift and the dataset is left as "
        "it was. Returns the dataset_id, the schema fingerprint, the columns and the row count.",
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"the dataset's name (its table name in query_sql)\"},\"source\":{\"type\":\"string\","
        "\"minLength\":1,\"description\":\"storage key of the CSV file, e.g. uploads/roster.csv\"}},"
        "\"required\":[\"name\",\"source\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"dataset_id\":{\"type\":\"string\"},\"schema_fingerprint\":"
        "{\"type\":\"string\"},\"columns\":{\"type\":\"array\"},\"row_count\":{\"type\":\"integer\"},"
        "\"key\":{\"type\":\"string\"}},\"required\":[\"dataset_id\",\"row_count\"]}",
        "ingestd", "ingest", S_LONG, LH_MCP_DESTRUCTIVE | LH_MCP_IDEMPOTENT, NULL, NULL },

    {   "embed_text", "Embed texts as vectors",
        "Turn texts into embedding vectors with the lakehouse's embedder (the default model "
        "unless model is given). The vectors come back in the order of texts, each of "
        "dimension dim. Use them with search_vectors (which can also take a text and embed "
        "it itself).",
        "{\"type\":\"object\",\"properties\":{\"texts\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
        "\"minItems\":1,\"description\":\"the texts to embed\"},\"model\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"embedding model; omit for the default\"}},\"required\":[\"texts\"],"
        "\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"model\":{\"type\":\"string\"},\"dim\":{\"type\":\"integer\"},"
        "\"vectors\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}}},"
        "\"required\":[\"dim\",\"vectors\"]}",
        "embedd", "embed", NULL, S_READ_ONLY, NULL, NULL },

    {   "search_vectors", "Search one vector index",
        "Find the k nearest neighbours (default 10) in one vector index of a query vector, or "
        "of a text that is embedded first (with model if given; the index must have the "
        "embedder's dimension). Hits come nearest first, each with its id, distance and the "
        "metadata stored with it. filter keeps only hits whose metadata has all these "
        "key/value pairs; exclude_ids drops those ids. To search several indexes at once, "
        "or to use playbook memory, use matrix_search.",
        "{\"type\":\"object\",\"properties\":{\"index\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"the vector index's name\"},\"text\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"query text, embedded first (give text or vector)\"},\"vector\":{\"type\":\"array\","
        "\"items\":{\"type\":\"number\"},\"minItems\":1,\"description\":\"query vector (give text or vector)\"},"
        "\"model\":{\"type\":\"string\",\"minLength\":1,\"description\":\"embedding model for text\"},"
        "\"k\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"how many hits\"},\"ef\":{\"type\":\"integer\","
        "\"minimum\":1,\"description\":\"search breadth (default: the index's)\"},\"filter\":{\"type\":\"object\","
        "\"description\":\"metadata key/value pairs every hit must have\"},\"exclude_ids\":" S_STRINGS "},"
        "\"required\":[\"index\"],\"additionalProperties\":false}",
        S_HITS_OUT,
        "vectord", "search", NULL, S_READ_ONLY, s_plan_search_vectors, s_shape_hits },

    {   "matrix_search", "Search several corpora with playbook memory",
        "Search several vector corpora at once for a query text (embedded once) or a vector "
        "and merge the hits by distance; each hit names the corpus it came from. k hits in "
        "all (default 10), per_corpus_k from each. With use_playbook, answers recorded as "
        "good for similar queries (playbook_record) are boosted, and very close ones are "
        "added. exclude_ids drops ids after the merge and before the top-k cut. A corpus "
        "that does not exist fails with corpus_not_found naming it.",
        "{\"type\":\"object\",\"properties\":{\"query_text\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"query text (give query_text or vector)\"},\"vector\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"number\"},\"minItems\":1},\"corpora\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
        "\"minItems\":1,\"description\":\"the vector indexes to search\"},\"k\":{\"type\":\"integer\",\"minimum\":1},"
        "\"per_corpus_k\":{\"type\":\"integer\",\"minimum\":1},\"ef\":{\"type\":\"integer\",\"minimum\":1},"
        "\"filter\":{\"type\":\"object\"},\"exclude_ids\":" S_STRINGS ",\"model\":{\"type\":\"string\"},"
        "\"use_playbook\":{\"type\":\"boolean\",\"description\":\"boost answers recorded as good before\"},"
        "\"playbook_corpus\":{\"type\":\"string\"},\"playbook_top_k\":{\"type\":\"integer\",\"minimum\":1},"
        "\"playbook_max_distance\":{\"type\":\"number\",\"minimum\":0},\"playbook_max_inject_distance\":"
        "{\"type\":\"number\",\"minimum\":0}},\"required\":[\"corpora\"],\"additionalProperties\":false}",
        S_HITS_OUT,
        "matrixd", "search", NULL, S_READ_ONLY, NULL, NULL },

    {   "playbook_record", "Record a good answer",
        "Record that answer_id, from the corpus answer_corpus, was a good answer to "
        "query_text, with a score from 0 to 1 (1: exactly right). matrix_search with "
        "use_playbook then boosts that answer for similar queries. Recording the same "
        "query, answer and corpus again replaces the score (the last one wins). Returns "
        "the playbook_id.",
        "{\"type\":\"object\",\"properties\":{\"query_text\":{\"type\":\"string\",\"minLength\":1},"
        "\"answer_id\":{\"type\":\"string\",\"minLength\":1},\"answer_corpus\":{\"type\":\"string\",\"minLength\":1},"
        "\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},\"tags\":" S_STRINGS ","
        "\"playbook_corpus\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"}},"
        "\"required\":[\"query_text\",\"answer_id\",\"answer_corpus\",\"score\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"playbook_id\":{\"type\":\"string\"},\"playbook_corpus\":"
        "{\"type\":\"string\"}},\"required\":[\"playbook_id\"]}",
        "matrixd", "playbook_record", NULL, LH_MCP_IDEMPOTENT, NULL, NULL },

    {   "validate", "Validate a model's artifact",
        "Check an artifact a model produced against the worker roster and the rules before "
        "anyone acts on it. kind fill: {fills: [{candidate_id, name}]}; email: {subject, "
        "body, name?}; sms: {body, name?}; playbook: {fingerprint, operation, "
        "endorsed_names, target_count?}. context (target_count, city, state, role, "
        "client_id, candidate_id) is what the artifact must match. A valid artifact returns "
        "valid: true and any warnings; an invalid one is an error result naming the failed "
        "check: Schema, Completeness, Consistency (e.g. a candidate that is not in the "
        "roster) or Policy (e.g. an SSN-shaped number).",
        "{\"type\":\"object\",\"properties\":{" S_KIND ",\"artifact\":{\"type\":\"object\","
        "\"description\":\"what the model produced\"}," S_CONTEXT "},\"required\":[\"kind\",\"artifact\"],"
        "\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"kind\":{\"type\":\"string\"},\"valid\":{\"type\":\"boolean\"},"
        "\"warnings\":" S_STRINGS "},\"required\":[\"valid\"]}",
        "validatord", "validate", NULL, S_READ_ONLY, NULL, NULL },

    {   "iterate", "Generate and validate with a model",
        "Ask a language model for an artifact of the given kind (as validate describes) "
        "and validate each answer, feeding the validation error back to the model until an "
        "answer passes or max_iterations (default 3) are used up. model names the provider "
        "and model, e.g. ollama/qwen2.5. Returns the accepted artifact, its validation "
        "report, the iterations used and the history of attempts; fails with "
        "max_iter_exhausted when no answer passed.",
        "{\"type\":\"object\",\"properties\":{" S_KIND ",\"model\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"provider/model, e.g. ollama/qwen2.5\"},\"prompt\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"what to produce\"},\"system\":{\"type\":\"string\"}," S_CONTEXT ","
        "\"max_iterations\":{\"type\":\"integer\",\"minimum\":1},\"temperature\":{\"type\":\"number\","
        "\"minimum\":0,\"maximum\":2},\"max_tokens\":{\"type\":\"integer\",\"minimum\":1},\"trace_id\":"
        "{\"type\":\"string\",\"minLength\":1}},\"required\":[\"kind\",\"model\",\"prompt\"],"
        "\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"artifact\":{\"type\":\"object\"},\"validation\":{\"type\":\"object\"},"
        "\"iterations\":{\"type\":\"integer\"},\"history\":{\"type\":\"array\"},\"trace_id\":{\"type\":\"string\"}},"
        "\"required\":[\"artifact\",\"iterations\"]}",
        "validatord", "iterate", S_LONG, LH_MCP_OPEN_WORLD, NULL, NULL },

    {   "pathway_add", "Remember a trace",
        "Store a memory trace: content is any JSON (what was done, what worked), tags label "
        "it for pathway_search. Returns the trace with its new uid (a ULID), version 1 and "
        "its timestamps. A trace stays until it is retired; nothing changes it but explicit "
        "calls.",
        "{\"type\":\"object\",\"properties\":{\"content\":{\"description\":\"any JSON value\"},"
        "\"tags\":" S_STRINGS "},\"required\":[\"content\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"uid\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},"
        "\"tags\":" S_STRINGS ",\"created_at\":{\"type\":\"string\"}},\"required\":[\"uid\",\"version\"]}",
        "pathwayd", "add", NULL, 0, NULL, NULL },

    {   "pathway_search", "Search remembered traces",
        "Find memory traces whose tags include every tag given and whose content contains "
        "text (both ignoring case), newest first. Retired traces are left out unless "
        "include_retired. At most limit (default 100) come back; truncated says more "
        "matched.",
        "{\"type\":\"object\",\"properties\":{\"tags\":" S_STRINGS ",\"text\":{\"type\":\"string\","
        "\"minLength\":1},\"include_retired\":{\"type\":\"boolean\"},\"limit\":{\"type\":\"integer\","
        "\"minimum\":1}},\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
        "\"count\":{\"type\":\"integer\"},\"truncated\":{\"type\":\"boolean\"}},\"required\":[\"results\",\"count\"]}",
        "pathwayd", "search", NULL, S_READ_ONLY, NULL, NULL },

    {   "pathway_history", "Walk a trace's lineage",
        "Walk a trace's lineage backwards: the trace itself, then the trace it revised (its "
        "predecessor), and so on. truncated with next says the chain goes on (ask again "
        "with uid = next); missing names a predecessor that is not stored.",
        "{\"type\":\"object\",\"properties\":{\"uid\":{\"type\":\"string\",\"minLength\":1},\"limit\":"
        "{\"type\":\"integer\",\"minimum\":1}},\"required\":[\"uid\"],\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"uid\":{\"type\":\"string\"},\"chain\":{\"type\":\"array\","
        "\"items\":{\"type\":\"object\"}},\"count\":{\"type\":\"integer\"},\"truncated\":{\"type\":\"boolean\"}},"
        "\"required\":[\"chain\",\"count\"]}",
        "pathwayd", "history", NULL, S_READ_ONLY, NULL, NULL },

    {   "run_workflow", "Run a workflow",
        "Run a workflow: a DAG of bus calls (nodes with call: service.op, input with "
        "${inputs.X} and ${nodes.ID.output...} templates, needs) run by workflowd, "
        "independent nodes in parallel. Give name (a saved workflow) or definition (the "
        "definition as an object, or as YAML or JSON text), and inputs. By default the "
        "result comes when the run ends: status succeeded or failed (a failed run is still a "
        "result: each node's status and error are in nodes, dependants of a failed node are "
        "skipped). With wait false, or when the run outlasts the call, status is running: "
        "call again with run_id alone for its state.",
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,"
        "\"description\":\"a saved workflow's name\"},\"definition\":{\"type\":[\"object\",\"string\"],"
        "\"description\":\"the workflow itself: {name, inputs?, nodes: {ID: {call, input?, needs?, "
        "timeout_ms?, retries?}}}, or that as YAML or JSON text\"},\"inputs\":{\"type\":\"object\"},"
        "\"wait\":{\"type\":\"boolean\",\"description\":\"wait for the run's end (default true)\"},"
        "\"run_id\":{\"type\":\"string\",\"minLength\":1,\"description\":\"alone: the state of a "
        "run started before\"}},\"additionalProperties\":false}",
        "{\"type\":\"object\",\"properties\":{\"run_id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
        "\"status\":{\"type\":\"string\",\"enum\":[\"running\",\"succeeded\",\"failed\"]},"
        "\"nodes\":{\"type\":\"object\"},\"inputs\":{\"type\":\"object\"}},\"required\":[\"run_id\",\"status\"]}",
        "workflowd", "workflow_run", S_LONG, LH_MCP_OPEN_WORLD, s_plan_run_workflow, NULL },
};

#define S_TOOL_COUNT    (sizeof (s_tools) / sizeof (s_tools [0]))

//  The conformance suite's fixture tools (mcp/test_tools): answered
//  locally, never through the bus
static const lh_mcp_tool_t s_fixtures [] = {
    {   "test_simple_text", "Conformance fixture: text",
        "Conformance fixture (mcp/test_tools): returns a fixed text.",
        S_NO_ARGS, NULL, NULL, NULL, NULL, LH_MCP_LOCAL | S_READ_ONLY, NULL, NULL },
    {   "test_error_handling", "Conformance fixture: error",
        "Conformance fixture (mcp/test_tools): always fails, as an error result.",
        S_NO_ARGS, NULL, NULL, NULL, NULL, LH_MCP_LOCAL | S_READ_ONLY, NULL, NULL },
};

#define S_FIXTURE_COUNT (sizeof (s_fixtures) / sizeof (s_fixtures [0]))


//  --------------------------------------------------------------------------
//  The tool at index (fixtures after ours when asked for), NULL past the end

const lh_mcp_tool_t *
lh_mcp_tools_at (size_t index, bool fixtures)
{
    if (index < S_TOOL_COUNT)
        return &s_tools [index];
    index -= S_TOOL_COUNT;
    if (fixtures && index < S_FIXTURE_COUNT)
        return &s_fixtures [index];
    return NULL;
}


//  --------------------------------------------------------------------------
//  A fixture's result text; *is_error when it is an error result

const char *
lh_mcp_tools_fixture (const lh_mcp_tool_t *tool, bool *is_error)
{
    *is_error = streq (tool->name, "test_error_handling");
    return *is_error? "This tool intentionally returns an error for testing"
                    : "This is a simple text response for testing.";
}


//  --------------------------------------------------------------------------
//  run_workflow: {name | definition, inputs?, wait?} is workflowd's
//  workflow_run as it is; {run_id} alone is run_get.

static int
s_plan_run_workflow (lh_mcp_plan_t *plan, const json_t *reply)
{
    const json_t *args = plan->args;
    if (plan->step > 0)
        return 0;
    bool run_id = json_object_get (args, "run_id") != NULL;
    bool name = json_object_get (args, "name") != NULL;
    bool definition = json_object_get (args, "definition") != NULL;
    if (run_id && json_object_size (args) > 1) {
        plan->error = strdup ("give run_id alone (the state of a run), or name or definition "
                              "with inputs and wait (a new run)");
        return -1;
    }
    if (!run_id && name == definition) {
        plan->error = strdup (name? "give name or definition, not both"
                                  : "give name (a saved workflow) or definition (to run it inline)");
        return -1;
    }
    plan->service = "workflowd";
    plan->op = run_id? "run_get": "workflow_run";
    plan->body = json_deep_copy (args);
    return 1;
}


//  --------------------------------------------------------------------------
//  search_vectors: {index, text | vector, model?, k?, ef?, filter?,
//  exclude_ids?}. With text: embedd.embed first, then vectord.search with
//  the vector it gave.

static int
s_plan_search_vectors (lh_mcp_plan_t *plan, const json_t *reply)
{
    const json_t *args = plan->args;
    const json_t *text = json_object_get (args, "text");
    const json_t *vector = json_object_get (args, "vector");
    if (plan->step == 0) {
        if (text && vector) {
            plan->error = strdup ("give text or vector, not both");
            return -1;
        }
        if (!text && !vector) {
            plan->error = strdup ("give text (it is embedded first) or vector");
            return -1;
        }
    }
    if (plan->step == 0 && text) {
        plan->service = "embedd";
        plan->op = "embed";
        plan->body = json_pack ("{s:[O]}", "texts", text);
        const json_t *model = json_object_get (args, "model");
        if (model)
            json_object_set (plan->body, "model", (json_t *) model);
        return 1;
    }
    if (plan->step == 1 && !text)
        return 0;                       //  the search was the only call
    if (plan->step == 2)
        return 0;
    json_t *query = NULL;
    if (plan->step == 1) {
        const json_t *vectors = json_object_get (reply, "vectors");
        query = json_incref (json_array_get (vectors, 0));
        if (!json_is_array (query)) {
            json_decref (query);
            plan->error = strdup ("embedd.embed answered without a vector");
            return -1;
        }
    }
    else
        query = json_incref ((json_t *) vector);
    plan->service = "vectord";
    plan->op = "search";
    plan->body = json_object ();
    json_object_set (plan->body, "name", json_object_get (args, "index"));
    json_object_set_new (plan->body, "vector", query);
    const char *passed [] = { "k", "ef", "filter", "exclude_ids" };
    for (size_t index = 0; index < sizeof (passed) / sizeof (passed [0]); index++) {
        json_t *value = json_object_get (args, passed [index]);
        if (value)
            json_object_set (plan->body, passed [index], value);
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  vectord.search answers a bare array of hits: {hits, count}

static json_t *
s_shape_hits (const json_t *reply, char **error_p)
{
    if (!json_is_array (reply)) {
        *error_p = strdup ("vectord.search answered something other than a list of hits");
        return NULL;
    }
    return json_pack ("{s:O, s:I}", "hits", reply, "count", (json_int_t) json_array_size (reply));
}


//  --------------------------------------------------------------------------
//  The JSON type name of a value, as JSON Schema names it

static const char *
s_type_name (const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT:   return "object";
        case JSON_ARRAY:    return "array";
        case JSON_STRING:   return "string";
        case JSON_INTEGER:  return "integer";
        case JSON_REAL:     return "number";
        case JSON_TRUE:
        case JSON_FALSE:    return "boolean";
        default:            return "null";
    }
}


//  --------------------------------------------------------------------------
//  Does value have the schema type name? (an integer is a number too)

static bool
s_type_is (const json_t *value, const char *type)
{
    const char *actual = s_type_name (value);
    return streq (actual, type) || (streq (type, "number") && json_is_integer (value));
}


//  --------------------------------------------------------------------------
//  Code points in a UTF-8 string (jansson strings are valid UTF-8)

static size_t
s_utf8_length (const char *text, size_t size)
{
    size_t count = 0;
    for (size_t index = 0; index < size; index++)
        if (((unsigned char) text [index] & 0xC0) != 0x80)
            count++;
    return count;
}


//  --------------------------------------------------------------------------
//  Check value (at path) against schema. Returns 0, or -1 with *error_p.

static int
s_check (const json_t *schema, const json_t *value, const char *path, char **error_p)
{
    const json_t *type = json_object_get (schema, "type");
    if (json_is_string (type) && !s_type_is (value, json_string_value (type))) {
        *error_p = zsys_sprintf ("%s: must be %s %s, not %s", path,
                                 streq (json_string_value (type), "integer")
                              || streq (json_string_value (type), "array")
                              || streq (json_string_value (type), "object")? "an": "a",
                                 json_string_value (type), s_type_name (value));
        return -1;
    }
    if (json_is_array (type)) {
        bool matched = false;
        size_t index;
        json_t *item;
        json_array_foreach (type, index, item)
            if (json_is_string (item) && s_type_is (value, json_string_value (item)))
                matched = true;
        if (!matched) {
            char *names = json_dumps (type, JSON_COMPACT);
            *error_p = zsys_sprintf ("%s: must be one of the types %s, not %s", path,
                                     names? names: "?", s_type_name (value));
            free (names);
            return -1;
        }
    }
    const json_t *choices = json_object_get (schema, "enum");
    if (json_is_array (choices)) {
        bool matched = false;
        size_t index;
        json_t *item;
        json_array_foreach (choices, index, item)
            if (json_equal (item, (json_t *) value))
                matched = true;
        if (!matched) {
            char *names = json_dumps (choices, JSON_COMPACT);
            *error_p = zsys_sprintf ("%s: must be one of %s", path, names? names: "?");
            free (names);
            return -1;
        }
    }
    if (json_is_string (value)) {
        size_t length = s_utf8_length (json_string_value (value), json_string_length (value));
        const json_t *low = json_object_get (schema, "minLength");
        const json_t *high = json_object_get (schema, "maxLength");
        if (json_is_integer (low) && (json_int_t) length < json_integer_value (low)) {
            *error_p = length == 0? zsys_sprintf ("%s: must not be empty", path)
                                  : zsys_sprintf ("%s: must be at least %" JSON_INTEGER_FORMAT
                                                  " characters", path, json_integer_value (low));
            return -1;
        }
        if (json_is_integer (high) && (json_int_t) length > json_integer_value (high)) {
            *error_p = zsys_sprintf ("%s: must be at most %" JSON_INTEGER_FORMAT " characters",
                                     path, json_integer_value (high));
            return -1;
        }
    }
    if (json_is_number (value)) {
        const json_t *low = json_object_get (schema, "minimum");
        const json_t *high = json_object_get (schema, "maximum");
        double number = json_number_value (value);
        if (json_is_number (low) && number < json_number_value (low)) {
            *error_p = zsys_sprintf ("%s: must be at least %g", path, json_number_value (low));
            return -1;
        }
        if (json_is_number (high) && number > json_number_value (high)) {
            *error_p = zsys_sprintf ("%s: must be at most %g", path, json_number_value (high));
            return -1;
        }
    }
    if (json_is_array (value)) {
        const json_t *low = json_object_get (schema, "minItems");
        const json_t *high = json_object_get (schema, "maxItems");
        size_t size = json_array_size (value);
        if (json_is_integer (low) && (json_int_t) size < json_integer_value (low)) {
            *error_p = zsys_sprintf ("%s: must have at least %" JSON_INTEGER_FORMAT " item%s", path,
                                     json_integer_value (low), json_integer_value (low) == 1? "": "s");
            return -1;
        }
        if (json_is_integer (high) && (json_int_t) size > json_integer_value (high)) {
            *error_p = zsys_sprintf ("%s: must have at most %" JSON_INTEGER_FORMAT " items", path,
                                     json_integer_value (high));
            return -1;
        }
        const json_t *items = json_object_get (schema, "items");
        if (json_is_object (items)) {
            size_t index;
            json_t *item;
            json_array_foreach (value, index, item) {
                char *inner = zsys_sprintf ("%s[%zu]", path, index);
                int rc = s_check (items, item, inner, error_p);
                free (inner);
                if (rc)
                    return -1;
            }
        }
    }
    if (json_is_object (value)) {
        const json_t *properties = json_object_get (schema, "properties");
        const json_t *required = json_object_get (schema, "required");
        size_t index;
        json_t *item;
        json_array_foreach (required, index, item) {
            if (json_is_string (item) && !json_object_get (value, json_string_value (item))) {
                *error_p = zsys_sprintf ("%s.%s is required", path, json_string_value (item));
                return -1;
            }
        }
        const char *key;
        json_t *member;
        json_object_foreach ((json_t *) value, key, member) {
            const json_t *inner_schema = json_object_get (properties, key);
            if (!inner_schema) {
                if (json_is_false (json_object_get (schema, "additionalProperties"))) {
                    *error_p = zsys_sprintf ("%s: unknown argument '%.64s'", path, key);
                    return -1;
                }
                continue;
            }
            char *inner = zsys_sprintf ("%s.%s", path, key);
            int rc = s_check (inner_schema, member, inner, error_p);
            free (inner);
            if (rc)
                return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Check a tool's arguments against its input schema

int
lh_mcp_schema_check (const json_t *schema, const json_t *value, char **error_p)
{
    assert (schema && value && error_p);
    return s_check (schema, value, "arguments", error_p);
}


//  --------------------------------------------------------------------------
//  Self test: every schema parses and is an object schema; the checker's
//  table of cases; search_vectors' plan

void
lh_mcp_tools_test (bool verbose)
{
    printf (" * lh_mcp_tools: ");
    size_t count = 0;
    for (const lh_mcp_tool_t *tool; (tool = lh_mcp_tools_at (count, true)); count++) {
        json_error_t error;
        json_t *input = json_loads (tool->input_schema, 0, &error);
        if (!input)
            printf ("\n   %s: input schema: %s\n", tool->name, error.text);
        assert (input && streq (json_string_value (json_object_get (input, "type")), "object"));
        json_decref (input);
        if (tool->output_schema) {
            json_t *output = json_loads (tool->output_schema, 0, &error);
            if (!output)
                printf ("\n   %s: output schema: %s\n", tool->name, error.text);
            assert (output && streq (json_string_value (json_object_get (output, "type")), "object"));
            json_decref (output);
        }
        assert (strlen (tool->name) <= 128 && strlen (tool->description) > 20);
        assert ((tool->hints & LH_MCP_LOCAL) || (tool->service && tool->op));
    }
    assert (count == S_TOOL_COUNT + S_FIXTURE_COUNT);
    assert (lh_mcp_tools_at (S_TOOL_COUNT, false) == NULL);

    json_t *schema = json_loads (s_tools [5].input_schema, 0, NULL);     //  search_vectors
    assert (schema && streq (s_tools [5].name, "search_vectors"));
    struct {
        const char *args;
        const char *error;              //  NULL: accepted; else a part of the sentence
    } cases [] = {
        { "{\"index\": \"w\", \"text\": \"x\"}", NULL },
        { "{\"index\": \"w\", \"vector\": [1, 2.5], \"k\": 3}", NULL },
        { "{}", "arguments.index is required" },
        { "{\"index\": 7}", "arguments.index: must be a string, not integer" },
        { "{\"index\": \"\"}", "arguments.index: must not be empty" },
        { "{\"index\": \"w\", \"k\": 0}", "arguments.k: must be at least 1" },
        { "{\"index\": \"w\", \"k\": 2.5}", "arguments.k: must be an integer, not number" },
        { "{\"index\": \"w\", \"vector\": []}", "arguments.vector: must have at least 1 item" },
        { "{\"index\": \"w\", \"vector\": [1, \"a\"]}", "arguments.vector[1]: must be a number" },
        { "{\"index\": \"w\", \"exclude_ids\": [\"a\", 3]}", "arguments.exclude_ids[1]" },
        { "{\"index\": \"w\", \"filter\": []}", "arguments.filter: must be an object" },
        { "{\"index\": \"w\", \"sqll\": 1}", "unknown argument 'sqll'" },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        json_t *args = json_loads (cases [index].args, 0, NULL);
        assert (args);
        char *error = NULL;
        int rc = lh_mcp_schema_check (schema, args, &error);
        if (verbose)
            printf ("\n   %s -> %s", cases [index].args, error? error: "ok");
        if (cases [index].error)
            assert (rc == -1 && error && strstr (error, cases [index].error));
        else
            assert (rc == 0 && !error);
        free (error);
        json_decref (args);
    }
    json_decref (schema);

    //  Types given as a list, enum, numeric bounds
    json_t *sql = json_loads (s_tools [2].input_schema, 0, NULL);
    json_t *args = json_pack ("{s:s, s:[i]}", "sql", "SELECT ?", "params", 1);
    char *error = NULL;
    assert (lh_mcp_schema_check (sql, args, &error) == 0);
    json_object_set_new (args, "params", json_string ("x"));
    assert (lh_mcp_schema_check (sql, args, &error) == -1 && strstr (error, "one of the types"));
    zstr_free (&error);
    json_decref (args);
    json_decref (sql);
    json_t *validate = json_loads (s_tools [8].input_schema, 0, NULL);
    args = json_pack ("{s:s, s:{}}", "kind", "invoice", "artifact");
    assert (lh_mcp_schema_check (validate, args, &error) == -1 && strstr (error, "must be one of"));
    zstr_free (&error);
    json_decref (args);
    json_decref (validate);
    json_t *record = json_loads (s_tools [7].input_schema, 0, NULL);
    args = json_pack ("{s:s, s:s, s:s, s:f}", "query_text", "q", "answer_id", "a",
                      "answer_corpus", "c", "score", 1.5);
    assert (lh_mcp_schema_check (record, args, &error) == -1 && strstr (error, "at most 1"));
    zstr_free (&error);
    json_object_set_new (args, "score", json_integer (1));
    assert (lh_mcp_schema_check (record, args, &error) == 0);
    json_decref (args);
    json_decref (record);

    //  search_vectors: text embeds first, then searches with that vector
    args = json_pack ("{s:s, s:s, s:i}", "index", "w", "text", "forklift", "k", 3);
    lh_mcp_plan_t plan = { .args = args };
    assert (s_plan_search_vectors (&plan, NULL) == 1);
    assert (streq (plan.service, "embedd") && streq (plan.op, "embed"));
    json_decref (plan.body);
    plan.body = NULL;
    plan.step = 1;
    json_t *embedded = json_pack ("{s:i, s:[[f,f]]}", "dim", 2, "vectors", 0.5, 0.25);
    assert (s_plan_search_vectors (&plan, embedded) == 1);
    assert (streq (plan.service, "vectord") && streq (plan.op, "search"));
    assert (json_integer_value (json_object_get (plan.body, "k")) == 3);
    assert (streq (json_string_value (json_object_get (plan.body, "name")), "w"));
    assert (json_array_size (json_object_get (plan.body, "vector")) == 2);
    json_decref (plan.body);
    plan.body = NULL;
    plan.step = 2;
    assert (s_plan_search_vectors (&plan, embedded) == 0);
    json_decref (embedded);
    json_object_set_new (args, "vector", json_pack ("[f]", 1.0));
    plan.step = 0;
    assert (s_plan_search_vectors (&plan, NULL) == -1 && strstr (plan.error, "not both"));
    zstr_free (&plan.error);
    json_decref (args);
    json_t *hits = json_pack ("[{s:s}]", "id", "a");
    json_t *shaped = s_shape_hits (hits, &error);
    assert (shaped && json_integer_value (json_object_get (shaped, "count")) == 1);
    json_decref (shaped);
    json_decref (hits);
    //  run_workflow: a new run, or run_id alone for run_get
    const char *runs [][3] = {
        { "{\"name\":\"n\",\"inputs\":{\"a\":1},\"wait\":false}", "workflow_run", NULL },
        { "{\"definition\":\"name: x\\nnodes: {}\"}", "workflow_run", NULL },
        { "{\"run_id\":\"01ABC\"}", "run_get", NULL },
        { "{\"run_id\":\"01ABC\",\"wait\":true}", NULL, "run_id alone" },
        { "{\"name\":\"n\",\"definition\":{}}", NULL, "not both" },
        { "{\"inputs\":{}}", NULL, "give name" },
    };
    json_t *run_schema = json_loads (s_tools [S_TOOL_COUNT - 1].input_schema, 0, NULL);
    assert (run_schema && streq (s_tools [S_TOOL_COUNT - 1].name, "run_workflow"));
    for (size_t index = 0; index < sizeof (runs) / sizeof (runs [0]); index++) {
        args = json_loads (runs [index][0], 0, NULL);
        assert (args && lh_mcp_schema_check (run_schema, args, &error) == 0);
        lh_mcp_plan_t run = { .args = args };
        int rc = s_plan_run_workflow (&run, NULL);
        if (runs [index][1]) {
            assert (rc == 1 && streq (run.service, "workflowd") && streq (run.op, runs [index][1]));
            assert (json_equal (run.body, args));
            run.step = 1;
            assert (s_plan_run_workflow (&run, run.body) == 0);
            json_decref (run.body);
        }
        else
            assert (rc == -1 && strstr (run.error, runs [index][2]));
        zstr_free (&run.error);
        json_decref (args);
    }
    args = json_pack ("{s:i}", "definition", 3);
    assert (lh_mcp_schema_check (run_schema, args, &error) == -1 && strstr (error, "one of the types"));
    zstr_free (&error);
    json_decref (args);
    json_decref (run_schema);

    json_t *object = json_object ();
    assert (s_shape_hits (object, &error) == NULL && error);
    zstr_free (&error);
    json_decref (object);
    printf ("OK\n");
}
