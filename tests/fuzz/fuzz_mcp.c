/*  =========================================================================
    fuzz_mcp - libFuzzer target for the MCP message handler (lh_mcp.c):
    JSON-RPC parsing and dispatch, tool argument checks, cursors, URIs

    An input is one or more messages separated by newlines, handled in
    order on one fresh session (as `lakehouse mcp` reads stdin); when its
    first byte is odd the session is initialized first. Every message must
    be answered with one line of JSON, or not at all when it is a
    notification or a response; a bus call a request plans is finished
    without a bus (NULL reply) or with an error reply, and must then
    answer too. The input's last line also names a dataset that changed.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/mcp.
    =========================================================================
*/

#include "lh_mcp.h"
#include "lh_log.h"
#include <jansson.h>

#define S_MESSAGES_MAX  16              //  messages handled per input

static lh_mcp_t *s_mcp = NULL;          //  made once: the tool table is fixed

//  --------------------------------------------------------------------------
//  An answer must be one line of JSON-RPC 2.0 with an id (null for errors
//  of unreadable messages) and a result or an error

static void
s_check_answer (const char *answer)
{
    assert (answer && !strchr (answer, '\n'));
    json_t *json = json_loads (answer, JSON_ALLOW_NUL, NULL);
    assert (json_is_object (json));
    assert (streq (json_string_value (json_object_get (json, "jsonrpc")), "2.0"));
    assert (json_object_get (json, "id"));
    json_t *result = json_object_get (json, "result");
    json_t *error = json_object_get (json, "error");
    assert ((result != NULL) != (error != NULL));
    if (error)
        assert (json_is_integer (json_object_get (error, "code"))
                && json_is_string (json_object_get (error, "message")));
    json_decref (json);
}

//  --------------------------------------------------------------------------
//  Handle one message and check what came of it

static void
s_handle (lh_mcp_session_t *session, const char *data, size_t size, unsigned turn)
{
    lh_mcp_result_t result;
    lh_mcp_handle (session, data, size, &result);
    if (result.in == LH_MCP_IN_INVALID)
        assert (result.answer && result.error && !result.call);
    if (result.in == LH_MCP_IN_NOTIFICATION || result.in == LH_MCP_IN_RESPONSE)
        assert (!result.answer && !result.call);
    if (result.in == LH_MCP_IN_REQUEST)
        assert ((result.answer != NULL) != (result.call != NULL));
    if (result.answer)
        s_check_answer (result.answer);
    free (result.answer);
    lh_mcp_call_t *call = result.call;
    //  No bus, or a bus that refuses: the request is answered all the same
    lh_reply_t *reply = turn % 2? lh_reply_new_error (404, "no_such_dataset", "no dataset 'x'"): NULL;
    while (call) {
        char *answer = NULL;
        size_t body_size = 0;
        lh_mcp_call_body (call, &body_size);
        assert (*lh_mcp_call_service (call) && *lh_mcp_call_op (call));
        int rc = lh_mcp_call_finish (call, reply, &answer);
        assert (rc == 0);               //  an error reply plans nothing more
        if (answer)
            s_check_answer (answer);
        free (answer);
        lh_mcp_call_destroy (&call);
    }
    lh_reply_destroy (&reply);
}

//  --------------------------------------------------------------------------
//  One input: messages on a fresh session, then a catalog change

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_mcp) {
        char *error = NULL;
        lh_config_t *config = lh_config_load (NULL, &error);
        assert (config);
        lh_config_set (config, "mcp/test_tools", "true");
        lh_config_set (config, "mcp/body_max", "65536");
        lh_config_set (config, "mcp/queue_max", "8");
        lh_config_set (config, "mcp/subscriptions_max", "4");
        lh_config_set (config, "mcp/log_level", "debug");
        s_mcp = lh_mcp_new (config);
        lh_config_destroy (&config);
        lh_log_set_level (LH_LOG_ERROR);
    }
    lh_mcp_session_t *session = lh_mcp_session_new (s_mcp);
    if (size && (data [0] & 1)) {
        const char *init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
                           "{\"protocolVersion\":\"2025-11-25\"}}";
        s_handle (session, init, strlen (init), 0);
    }
    const char *text = (const char *) data + (size? 1: 0);
    size_t left = size? size - 1: 0;
    unsigned turn = 0;
    const char *last = text;
    size_t last_size = left;
    while (turn < S_MESSAGES_MAX) {
        const char *newline = (const char *) memchr (text, '\n', left);
        size_t piece = newline? (size_t) (newline - text): left;
        s_handle (session, text, piece, ++turn);
        last = text;
        last_size = piece;
        if (!newline)
            break;
        text = newline + 1;
        left -= piece + 1;
    }
    //  The last line as a dataset name that changed (NUL-free prefix)
    char name [64];
    size_t name_size = last_size < sizeof (name) - 1? last_size: sizeof (name) - 1;
    memcpy (name, last, name_size);
    name [name_size] = 0;
    lh_mcp_session_catalog_changed (session, name_size? name: NULL);
    char *note;
    while ((note = lh_mcp_session_next (session))) {
        assert (!strchr (note, '\n'));
        json_t *json = json_loads (note, JSON_ALLOW_NUL, NULL);
        assert (json_is_string (json_object_get (json, "method")) && !json_object_get (json, "id"));
        json_decref (json);
        free (note);
    }
    lh_mcp_session_destroy (&session);
    return 0;
}
