/*  =========================================================================
    lh_mcp_stdio - the MCP stdio transport; see lh_mcp_stdio.h

    One loop polls stdin, the bus client's socket and a signalfd (SIGINT,
    SIGTERM: the launcher blocks them in every thread, so they are read,
    not caught). Calls in flight are kept by their bus request id.
    =========================================================================
*/

#include "lh_mcp_stdio.h"
#include "lh_mcp.h"
#include "lh_tool.h"
#include "lh_log.h"
#include "lh_json.h"
#include <sys/signalfd.h>
#include <signal.h>
#include <poll.h>
#include <inttypes.h>

#define S_NAME          "mcp"
#define S_READ_SIZE     (64 * 1024)     //  bytes read from stdin at a time
#define S_TICK_MS       100             //  bus housekeeping period
#define S_CALLS_MAX     64              //  calls in flight before stdin waits

//  The transport's state
typedef struct {
    lh_mcp_t *mcp;                      //  the server
    lh_mcp_session_t *session;          //  the one session
    lh_client_t *client;                //  the bus (borrowed)
    int out_fd;                         //  where answers go
    zhashx_t *calls;                    //  bus request id ("%" PRIu64) -> lh_mcp_call_t *
    char *line;                         //  the line being read
    size_t size;                        //  its bytes so far
    size_t capacity;                    //  allocated
    size_t limit;                       //  mcp/body_max
    bool skipping;                      //  dropping a line past the limit
    uint64_t skipped;                   //  bytes of it dropped
    bool broken;                        //  out_fd cannot be written
} s_self_t;


//  --------------------------------------------------------------------------
//  Write one message and its newline; on failure mark the output broken

static void
s_write (s_self_t *self, const char *text)
{
    if (self->broken)
        return;
    size_t size = strlen (text);
    struct iovec parts [2] = { { (void *) text, size }, { (void *) "\n", 1 } };
    size_t total = size + 1, done = 0;
    while (done < total) {
        //  Skip what is already written
        struct iovec rest [2];
        int count = 0;
        size_t skip = done;
        for (int index = 0; index < 2; index++) {
            if (skip >= parts [index].iov_len) {
                skip -= parts [index].iov_len;
                continue;
            }
            rest [count].iov_base = (char *) parts [index].iov_base + skip;
            rest [count].iov_len = parts [index].iov_len - skip;
            skip = 0;
            count++;
        }
        ssize_t rc = writev (self->out_fd, rest, count);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 && errno == EAGAIN) {
            struct pollfd item = { self->out_fd, POLLOUT, 0 };
            poll (&item, 1, 1000);
            continue;
        }
        if (rc <= 0) {
            lh_error (S_NAME, NULL, "cannot write to the client: %s",
                      rc < 0? strerror (errno): "closed");
            self->broken = true;
            return;
        }
        done += (size_t) rc;
    }
}


//  --------------------------------------------------------------------------
//  Write what the session's outbox holds

static void
s_flush_notifications (s_self_t *self)
{
    char *text;
    while ((text = lh_mcp_session_next (self->session))) {
        s_write (self, text);
        free (text);
    }
}


//  --------------------------------------------------------------------------
//  Send a call's bus request; keep the call by its request id. If it cannot
//  be sent, finish it as if the bus were gone. Takes the call.

static void
s_call_send (s_self_t *self, lh_mcp_call_t *call)
{
    while (call) {
        size_t size;
        const void *body = lh_mcp_call_body (call, &size);
        lh_call_opts_t opts = { .timeout_ms = lh_mcp_call_timeout (call) };
        uint64_t id = lh_client_send (self->client, lh_mcp_call_service (call),
                                      lh_mcp_call_op (call), body, size, &opts);
        if (id) {
            char key [24];
            snprintf (key, sizeof (key), "%" PRIu64, id);
            zhashx_insert (self->calls, key, call);
            return;
        }
        char *answer = NULL;
        if (lh_mcp_call_finish (call, NULL, &answer) == 1)
            continue;                   //  cannot happen without a reply; loop anyway
        if (answer)
            s_write (self, answer);
        free (answer);
        lh_mcp_call_destroy (&call);
    }
}


//  --------------------------------------------------------------------------
//  One line from stdin

static void
s_message (s_self_t *self, const char *text, size_t size)
{
    //  Blank lines carry no message
    size_t start = 0;
    while (start < size && (text [start] == ' ' || text [start] == '\t' || text [start] == '\r'))
        start++;
    if (start == size)
        return;
    lh_mcp_result_t result;
    lh_mcp_handle (self->session, text, size, &result);
    if (result.answer) {
        s_write (self, result.answer);
        free (result.answer);
    }
    if (result.call)
        s_call_send (self, result.call);
    s_flush_notifications (self);
}


//  --------------------------------------------------------------------------
//  Bytes from stdin: cut them into lines. Returns -1 at the end of input.

static int
s_read (s_self_t *self, int in_fd)
{
    char buffer [S_READ_SIZE];
    ssize_t got = read (in_fd, buffer, sizeof (buffer));
    if (got < 0)
        return errno == EINTR || errno == EAGAIN? 0: -1;
    if (got == 0) {
        if (self->size && !self->skipping)
            s_message (self, self->line, self->size);      //  a last line without \n
        self->size = 0;
        return -1;
    }
    const char *at = buffer, *end = buffer + got;
    while (at < end) {
        const char *newline = (const char *) memchr (at, '\n', (size_t) (end - at));
        size_t piece = (size_t) ((newline? newline: end) - at);
        if (!self->skipping && self->size + piece > self->limit) {
            self->skipping = true;      //  past mcp/body_max: drop it to its end
            self->skipped = self->size;
            self->size = 0;
        }
        if (self->skipping)
            self->skipped += piece;
        else {
            if (self->size + piece > self->capacity) {
                size_t capacity = self->capacity? self->capacity: 4096;
                while (capacity < self->size + piece)
                    capacity *= 2;
                char *line = (char *) realloc (self->line, capacity);
                assert (line);
                self->line = line;
                self->capacity = capacity;
            }
            memcpy (self->line + self->size, at, piece);
            self->size += piece;
        }
        if (!newline)
            break;
        if (self->skipping) {
            char *message = zsys_sprintf ("Invalid Request: a message of %" PRIu64 " bytes or more, "
                                          "over the limit of %zu (mcp/body_max); it was dropped",
                                          self->skipped, self->limit);
            char *answer = lh_mcp_error_text (LH_MCP_INVALID_REQUEST, message);
            s_write (self, answer);
            free (answer);
            free (message);
            self->skipping = false;
        }
        else
            s_message (self, self->line, self->size);
        self->size = 0;
        //  A big line leaves a big buffer: give it back
        if (self->capacity > 1024 * 1024) {
            free (self->line);
            self->line = NULL;
            self->capacity = 0;
        }
        at = newline + 1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Something from the bus: a reply to a call, or an event

static void
s_bus (s_self_t *self, lh_reply_t *reply)
{
    if (lh_reply_type (reply) == LH_T_PUB) {
        const lh_header_t *header = lh_reply_header (reply);
        if (streq (header->topic, "catalog.changed")) {
            const msgpack_object *object = lh_reply_object (reply);
            const char *name = NULL;
            size_t size = 0;
            char *copy = object && lh_obj_str (object, "name", &name, &size)
                       ? strndup (name, size): NULL;
            lh_mcp_session_catalog_changed (self->session, copy);
            free (copy);
            s_flush_notifications (self);
        }
        return;
    }
    if (lh_reply_type (reply) != LH_T_REP)
        return;                         //  no tool streams PARTs
    char key [24];
    snprintf (key, sizeof (key), "%" PRIu64, lh_reply_cid (reply));
    lh_mcp_call_t *call = (lh_mcp_call_t *) zhashx_lookup (self->calls, key);
    if (!call)
        return;
    zhashx_delete (self->calls, key);
    char *answer = NULL;
    if (lh_mcp_call_finish (call, reply, &answer) == 1) {
        s_call_send (self, call);       //  the tool's next call
        return;
    }
    if (answer)
        s_write (self, answer);
    free (answer);
    lh_mcp_call_destroy (&call);
    s_flush_notifications (self);
}


//  --------------------------------------------------------------------------
//  Serve over a connected client until stdin ends (and the calls in flight
//  are answered) or a signal comes

int
lh_mcp_stdio_serve (lh_config_t *config, lh_client_t *client, int in_fd, int out_fd)
{
    assert (config && client);
    s_self_t self = { .client = client, .out_fd = out_fd };
    self.mcp = lh_mcp_new (config);
    self.session = lh_mcp_session_new (self.mcp);
    self.calls = zhashx_new ();
    assert (self.calls);
    self.limit = lh_mcp_body_max (self.mcp);
    if (lh_client_subscribe (client, "catalog.changed"))
        lh_warn (S_NAME, NULL, "cannot subscribe to catalog.changed: no list_changed notifications");
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    int signal_fd = signalfd (-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    bool reading = true;
    int rc = 0;
    while (!self.broken && (reading || zhashx_size (self.calls))) {
        zmq_pollitem_t items [3] = {
            { zsock_resolve (lh_client_sock (client)), 0, ZMQ_POLLIN, 0 },
            { NULL, signal_fd, ZMQ_POLLIN, 0 },
            { NULL, in_fd, ZMQ_POLLIN, 0 }
        };
        //  The signalfd when there is one, stdin while it is read and
        //  fewer than S_CALLS_MAX calls are in flight (a client that sends
        //  faster than the bus answers waits: its pipe fills)
        int count = 1;
        if (signal_fd >= 0)
            count++;
        else
            items [1] = items [2];
        bool taking = reading && zhashx_size (self.calls) < S_CALLS_MAX;
        if (taking)
            count++;
        if (zmq_poll (items, count, S_TICK_MS) < 0 && errno != EINTR)
            break;
        if (signal_fd >= 0 && (items [1].revents & ZMQ_POLLIN)) {
            lh_info (S_NAME, NULL, "stopped by a signal");
            break;
        }
        zmq_pollitem_t *input = &items [count - 1];
        if (taking && (input->revents & (ZMQ_POLLIN | ZMQ_POLLERR)) && s_read (&self, in_fd)) {
            reading = false;
            if (zhashx_size (self.calls))
                lh_info (S_NAME, NULL, "end of input: answering %zu calls in flight",
                         zhashx_size (self.calls));
        }
        //  The bus, read dry; this also keeps the session alive and
        //  expires deadlines
        lh_reply_t *reply = NULL;
        while (lh_client_recv (client, &reply, 0) == 0) {
            s_bus (&self, reply);
            lh_reply_destroy (&reply);
        }
    }
    if (self.broken)
        rc = 1;
    if (signal_fd >= 0)
        close (signal_fd);
    //  Calls still in flight (a signal, a broken output) are dropped
    for (lh_mcp_call_t *call = (lh_mcp_call_t *) zhashx_first (self.calls); call;
         call = (lh_mcp_call_t *) zhashx_next (self.calls))
        lh_mcp_call_destroy (&call);
    zhashx_destroy (&self.calls);
    free (self.line);
    lh_mcp_session_destroy (&self.session);
    lh_mcp_destroy (&self.mcp);
    return rc;
}


//  --------------------------------------------------------------------------
//  Connect as the config says, then serve

int
lh_mcp_stdio_run (lh_config_t *config, int in_fd, int out_fd)
{
    //  Linked as the other tools link (common/lh_tool.h) with our own
    //  certificate (bus/cert, else CERTS/mcp.cert): a refused handshake or
    //  nothing listening is said at once, naming the certificate and what
    //  to do, and we exit 1
    lh_tool_opts_t opts = { .cert_name = "mcp" };
    int failure = 0;
    lh_tool_link_t *link = lh_tool_link_new (config, "lakehouse mcp", &opts, &failure);
    lh_client_t *client = link? lh_tool_link_client (link, "mcp", &failure): NULL;
    if (!client) {
        lh_tool_link_destroy (&link);
        return 1;
    }
    lh_info (S_NAME, NULL, "serving MCP on stdio against %s", lh_tool_link_endpoint (link));
    int rc = lh_mcp_stdio_serve (config, client, in_fd, out_fd);
    lh_client_destroy (&client);
    lh_tool_link_destroy (&link);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: a conversation through pipes against catalogd on a test bus

#include "lh_testbus.h"
#include "storaged.h"
#include "catalogd.h"

void
lh_mcp_stdio_test (bool verbose)
{
    printf (" * lh_mcp_stdio: ");
    lh_testbus_t *bus = lh_testbus_new ("mcp-stdio");
    lh_testbus_set (bus, "mcp/body_max", "2048");
    lh_testbus_start (bus, &lh_storaged_service, 1);
    lh_testbus_start (bus, &lh_catalogd_service, 1);
    assert (lh_testbus_status (bus, "catalogd", "register",
                               "{\"name\": \"w\", \"schema_fingerprint\": \"f\"}") == 201);
    int in [2], out [2];
    assert (pipe (in) == 0 && pipe (out) == 0);
    //  Everything the client says, then the end of its input; a line over
    //  the limit in the middle, a last line without its newline
    char *big = (char *) malloc (5000);
    assert (big);
    memset (big, 'x', 4999);
    big [4999] = 0;
    const char *lines [] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
        "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
        "\n",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_manifest\","
        "\"arguments\":{\"name\":\"w\"}}}\r\n",
        big, "\n",
        "not json\n",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}"
    };
    for (size_t index = 0; index < sizeof (lines) / sizeof (lines [0]); index++)
        assert (write (in [1], lines [index], strlen (lines [index])) == (ssize_t) strlen (lines [index]));
    close (in [1]);
    free (big);
    lh_client_t *client = lh_testbus_client_new (bus, "mcp-stdio-test");
    assert (lh_mcp_stdio_serve (lh_testbus_config (bus), client, in [0], out [1]) == 0);
    lh_client_destroy (&client);
    close (in [0]);
    close (out [1]);
    char output [16384];
    ssize_t size = read (out [0], output, sizeof (output) - 1);
    assert (size > 0);
    output [size] = 0;
    close (out [0]);
    if (verbose)
        printf ("\n%s", output);
    //  Five answers, one per line: initialize, ping (answered at once),
    //  the oversized line, the parse error, then the tool's result
    char *saveptr = NULL;
    size_t answers = 0;
    bool manifest = false, too_big = false, parse_error = false, ping = false;
    for (char *line = strtok_r (output, "\n", &saveptr); line; line = strtok_r (NULL, "\n", &saveptr)) {
        json_t *answer = json_loads (line, 0, NULL);
        assert (answer);
        json_t *id = json_object_get (answer, "id");
        json_t *error = json_object_get (answer, "error");
        int code = (int) json_integer_value (json_object_get (error, "code"));
        if (json_integer_value (id) == 2)
            manifest = strstr (line, "\"structuredContent\"") && strstr (line, "\"dataset_id\"");
        if (json_integer_value (id) == 3)
            ping = json_is_object (json_object_get (answer, "result"));
        if (json_is_null (id) && code == LH_MCP_INVALID_REQUEST)
            too_big = strstr (line, "mcp/body_max") != NULL;
        if (json_is_null (id) && code == LH_MCP_PARSE_ERROR)
            parse_error = true;
        answers++;
        json_decref (answer);
    }
    assert (answers == 5 && manifest && too_big && parse_error && ping);

    //  More calls than S_CALLS_MAX at once: stdin waits, all are answered
    assert (pipe (in) == 0 && pipe (out) == 0);
    const char *init = lines [0];
    assert (write (in [1], init, strlen (init)) == (ssize_t) strlen (init));
    for (int index = 0; index < 100; index++) {
        char *line = zsys_sprintf ("{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
                                   "\"params\":{\"name\":\"get_manifest\",\"arguments\":"
                                   "{\"name\":\"w\"}}}\n", 100 + index);
        assert (write (in [1], line, strlen (line)) == (ssize_t) strlen (line));
        free (line);
    }
    close (in [1]);
    client = lh_testbus_client_new (bus, "mcp-stdio-many");
    assert (lh_mcp_stdio_serve (lh_testbus_config (bus), client, in [0], out [1]) == 0);
    lh_client_destroy (&client);
    close (in [0]);
    close (out [1]);
    answers = 0;
    size_t results = 0;
    FILE *file = fdopen (out [0], "r");
    assert (file);
    char *line = NULL;
    size_t line_size = 0;
    while (getline (&line, &line_size, file) > 0) {
        answers++;
        if (strstr (line, "\"structuredContent\"") && strstr (line, "\"dataset_id\""))
            results++;
    }
    free (line);
    fclose (file);
    if (verbose)
        printf ("\n   100 calls at once: %zu answers, %zu results", answers, results);
    assert (answers == 101 && results == 100);
    lh_testbus_destroy (&bus);
    printf ("OK\n");
}
