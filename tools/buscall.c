/*  =========================================================================
    buscall - one request to a bus service from the shell

    buscall [options] SERVICE OP [JSON | -]

    --broker ENDPOINT   broker to call (else config bus/endpoint)
    --cert FILE         our CURVE certificate (else config bus/cert, else
                        CERTS/admin.cert of the local set)
    --server-key KEY    the broker's public key, Z85 or a public cert file
                        (else config bus/server_key, else CERTS/broker.cert)
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else the running
                        `lakehouse up` recorded in LAKEHOUSE_HOME/current,
                        else defaults: docs/tools.md "Finding the system")
    --timeout MS        deadline for the reply (default 5000)
    --idem KEY          idempotency key
    --trace HEX         trace id, 32 hex digits (default: a new one)
    -v, --verbose       debug logging, and the status line on stderr
    -h, --help          this text
    --                  end of options (for a JSON argument like -1)

    The body is the JSON argument, or standard input with `-`, turned into
    msgpack by the rules of docs/json.md (no argument: no body). PARTs are
    printed one compact JSON line each as they came, then the reply body:
    indented by 2 when standard output is a terminal, compact otherwise.

        $ buscall echo echo '{"n": 1, "blob": {"$base64": "AAE="}}'

    Exit codes: 0 for a 2xx reply; 1 for 4xx; 2 for 5xx, an unreachable
    broker, a refused CURVE handshake (said at once, naming the
    certificate) or a reply that cannot be shown as JSON; 64 for a bad
    command line, JSON body, config or certificate. Errors go to stderr as
    "buscall: SVC.OP: 404 Not Found: reason".
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_log.h"
#include "lh_tool.h"
#include "lh_json.h"
#include "lh_client.h"

#define S_EXIT_OK           0
#define S_EXIT_CLIENT       1           //  4xx
#define S_EXIT_SERVER       2           //  5xx, unreachable, unreadable reply
#define S_EXIT_USAGE        LH_TOOL_EXIT_USAGE          //  bad command line, JSON or config

#define s_bad_usage(...) lh_tool_bad_usage ("buscall", __VA_ARGS__)

//  The command line
typedef struct {
    const char *broker;                 //  --broker, or NULL
    const char *cert;                   //  --cert, or NULL
    const char *server_key;             //  --server-key, or NULL
    const char *config;                 //  --config, or NULL
    uint32_t timeout_ms;                //  --timeout, 0 = default
    const char *idem;                   //  --idem, or NULL
    char trace [LH_TRACE_SIZE + 1];     //  --trace, lowercased, or ""
    bool verbose;                       //  -v
    const char *svc;                    //  SERVICE
    const char *op;                     //  OP
    const char *json;                   //  JSON text, "-", or NULL
} s_args_t;


//  --------------------------------------------------------------------------
//  Print the usage text

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: buscall [options] SERVICE OP [JSON | -]\n"
        "\n"
        "  --broker ENDPOINT   broker to call (else config bus/endpoint)\n"
        "  --cert FILE         our CURVE certificate (else bus/cert, else CERTS/admin.cert)\n"
        "  --server-key KEY    broker's public key or public cert (else bus/server_key,\n"
        "                      else CERTS/broker.cert)\n"
        "  --config FILE       config file (else $LAKEHOUSE_CONFIG, else\n"
        "                      ./conf/lakehouse.cfg, else the running `lakehouse up`,\n"
        "                      else defaults)\n"
        "  --timeout MS        deadline for the reply (default 5000)\n"
        "  --idem KEY          idempotency key\n"
        "  --trace HEX         trace id, 32 hex digits (default: a new one)\n"
        "  -v, --verbose       debug logging, and the status line on stderr\n"
        "  -h, --help          this text\n"
        "\n"
        "JSON is the request body (`-` reads it from stdin); {\"$base64\": \"...\"}\n"
        "stands for binary. The reply body is printed as JSON. Exit: 0 for 2xx,\n"
        "1 for 4xx, 2 for 5xx, no reply or a refused handshake, 64 for a bad\n"
        "command line, config or certificate.\n");
}


//  --------------------------------------------------------------------------
//  Parse the command line into args. Returns 0, or an exit code (-1 for
//  --help, which exits 0).

static int
s_parse (s_args_t *args, int argc, char *argv [])
{
    memset (args, 0, sizeof (*args));
    const char *positional [3] = { NULL, NULL, NULL };
    int count = 0;
    bool options = true;
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn];
        if (options && streq (arg, "--")) {
            options = false;
            continue;
        }
        if (!options || arg [0] != '-' || streq (arg, "-")) {
            if (count == 3)
                return s_bad_usage ("too many arguments ('%s')", arg);
            positional [count++] = arg;
            continue;
        }
        if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return -1;
        }
        if (streq (arg, "-v") || streq (arg, "--verbose")) {
            args->verbose = true;
            continue;
        }
        if (!streq (arg, "--broker") && !streq (arg, "--config") && !streq (arg, "--timeout")
        &&  !streq (arg, "--idem") && !streq (arg, "--trace")
        &&  !streq (arg, "--cert") && !streq (arg, "--server-key"))
            return s_bad_usage ("unknown option '%s'", arg);
        if (argn + 1 >= argc)
            return s_bad_usage ("%s needs a value", arg);
        const char *value = argv [++argn];
        if (streq (arg, "--broker"))
            args->broker = value;
        else
        if (streq (arg, "--cert"))
            args->cert = value;
        else
        if (streq (arg, "--server-key"))
            args->server_key = value;
        else
        if (streq (arg, "--config"))
            args->config = value;
        else
        if (streq (arg, "--timeout")) {
            char *end = NULL;
            errno = 0;
            unsigned long long timeout = strtoull (value, &end, 10);
            if (!isdigit ((unsigned char) *value) || *end || errno
            ||  timeout == 0 || timeout > UINT32_MAX)
                return s_bad_usage ("--timeout '%s': give milliseconds, 1 to %u",
                                    value, UINT32_MAX);
            args->timeout_ms = (uint32_t) timeout;
        }
        else
        if (streq (arg, "--idem")) {
            if (!*value || strlen (value) > LH_IDEM_MAX)
                return s_bad_usage ("--idem: a key of 1 to %d bytes", LH_IDEM_MAX);
            args->idem = value;
        }
        else {
            size_t length = strlen (value);
            bool hex = length == LH_TRACE_SIZE;
            for (size_t index = 0; hex && index < length; index++)
                hex = isxdigit ((unsigned char) value [index]);
            if (!hex)
                return s_bad_usage ("--trace '%s': a trace id is %d hex digits",
                                    value, LH_TRACE_SIZE);
            for (size_t index = 0; index < length; index++)
                args->trace [index] = (char) tolower ((unsigned char) value [index]);
            args->trace [length] = 0;
        }
    }
    if (count < 2)
        return s_bad_usage ("give a SERVICE and an OP");
    args->svc = positional [0];
    args->op = positional [1];
    args->json = positional [2];
    if (!*args->svc || strlen (args->svc) > LH_NAME_MAX)
        return s_bad_usage ("SERVICE must be 1 to %d bytes", LH_NAME_MAX);
    if (!*args->op || strlen (args->op) > LH_NAME_MAX)
        return s_bad_usage ("OP must be 1 to %d bytes", LH_NAME_MAX);
    return 0;
}


//  --------------------------------------------------------------------------
//  Read all of stdin, up to limit bytes. Returns a chunk, or NULL after
//  printing why.

static zchunk_t *
s_read_stdin (size_t limit)
{
    zchunk_t *chunk = zchunk_new (NULL, 65536);
    assert (chunk);
    char buffer [65536];
    while (true) {
        ssize_t got = read (STDIN_FILENO, buffer, sizeof (buffer));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf (stderr, "buscall: cannot read stdin: %s\n", strerror (errno));
            zchunk_destroy (&chunk);
            return NULL;
        }
        if (got == 0)
            return chunk;
        if (zchunk_size (chunk) + (size_t) got > limit) {
            fprintf (stderr, "buscall: body on stdin is larger than %zu bytes\n", limit);
            zchunk_destroy (&chunk);
            return NULL;
        }
        zchunk_extend (chunk, buffer, (size_t) got);
    }
}


//  --------------------------------------------------------------------------
//  Print a msgpack body as JSON on file, pretty (indent 2) or compact, then
//  a newline. Returns 0, or -1 after printing why on stderr.

static int
s_print_body (FILE *file, const void *data, size_t size, bool pretty)
{
    char *error = NULL;
    json_t *json = lh_json_from_msgpack (data, size, NULL, &error);
    if (!json) {
        fprintf (stderr, "buscall: body (%zu bytes) cannot be shown as JSON: %s\n", size, error);
        free (error);
        return -1;
    }
    size_t flags = JSON_ENCODE_ANY | (pretty? JSON_INDENT (2): JSON_COMPACT);
    char *text = json_dumps (json, flags);
    json_decref (json);
    if (!text) {
        fprintf (stderr, "buscall: body (%zu bytes) cannot be shown as JSON\n", size);
        return -1;
    }
    fprintf (file, "%s\n", text);
    free (text);
    return 0;
}


//  --------------------------------------------------------------------------
//  Set the log level from config log/level, or debug with -v

static void
s_log_level (lh_config_t *config, bool verbose)
{
    const char *level = lh_config_str (config, "log/level");
    lh_log_set_level (verbose? LH_LOG_DEBUG:
                      streq (level, "debug")? LH_LOG_DEBUG:
                      streq (level, "warn")? LH_LOG_WARN:
                      streq (level, "error")? LH_LOG_ERROR: LH_LOG_INFO);
}


//  --------------------------------------------------------------------------
//  Show the reply: PARTs, then the body or the error. Returns the exit code.

static int
s_show_reply (s_args_t *args, lh_reply_t *reply, int64_t elapsed_ms)
{
    uint32_t status = lh_reply_status (reply);
    bool pretty = isatty (STDOUT_FILENO);
    int exit_code = status >= 200 && status < 300? S_EXIT_OK:
                    status >= 400 && status < 500? S_EXIT_CLIENT: S_EXIT_SERVER;
    size_t size = 0;
    const void *body = lh_reply_body (reply, &size);

    if (args->verbose) {
        const lh_header_t *header = lh_reply_header (reply);
        fprintf (stderr, "buscall: %s.%s: %u %s, %zu bytes, %" PRId64 " ms, trace %s\n",
                 args->svc, args->op, status, lh_status_text (status), body? size: 0,
                 elapsed_ms, header && (header->has & LH_H_TR)? header->tr: "-");
    }
    zlist_t *parts = lh_reply_parts (reply);
    if (parts)
        for (zframe_t *part = (zframe_t *) zlist_first (parts); part;
             part = (zframe_t *) zlist_next (parts))
            if (zframe_size (part) > 0
            &&  s_print_body (stdout, zframe_data (part), zframe_size (part), false))
                exit_code = S_EXIT_SERVER;
    if (exit_code == S_EXIT_OK) {
        if (body && size > 0 && s_print_body (stdout, body, size, pretty))
            exit_code = S_EXIT_SERVER;
    }
    else {
        fflush (stdout);
        const char *reason = lh_reply_reason (reply);
        char *text = NULL;
        if (!reason && body && size > 0)
            text = lh_json_text_from_msgpack (body, size, NULL, NULL);
        fprintf (stderr, "buscall: %s.%s: %u %s%s%s\n", args->svc, args->op,
                 status, lh_status_text (status),
                 reason || text? ": ": "", reason? reason: text? text: "");
        free (text);
    }
    fflush (stdout);
    return exit_code;
}


int
main (int argc, char *argv [])
{
    s_args_t args;
    int rc = s_parse (&args, argc, argv);
    if (rc)
        return rc < 0? S_EXIT_OK: rc;

    lh_config_t *config = lh_tool_config_load (args.config, "buscall");
    if (!config)
        return S_EXIT_USAGE;
    s_log_level (config, args.verbose);

    //  The body: JSON from the argument or stdin, as a msgpack frame
    zframe_t *body = NULL;
    if (args.json) {
        zchunk_t *input = NULL;
        const char *text = args.json;
        size_t size = strlen (text);
        if (streq (args.json, "-")) {
            input = s_read_stdin ((size_t) lh_config_int (config, "broker/max_msg"));
            if (!input) {
                lh_config_destroy (&config);
                return S_EXIT_USAGE;
            }
            text = (const char *) zchunk_data (input);
            size = zchunk_size (input);
        }
        char *error = NULL;
        body = lh_json_text_to_frame (text, size, NULL, &error);
        zchunk_destroy (&input);
        if (!body) {
            fprintf (stderr, "buscall: JSON body: %s\n", error? error: "invalid");
            free (error);
            lh_config_destroy (&config);
            return S_EXIT_USAGE;
        }
    }

    lh_tool_opts_t link_opts = { .endpoint = args.broker, .flag = "--broker",
                                 .cert = args.cert, .server_key = args.server_key };
    int failure = 0;
    lh_tool_link_t *link = lh_tool_link_new (config, "buscall", &link_opts, &failure);
    lh_client_t *client = link? lh_tool_link_client (link, "buscall", &failure): NULL;
    if (!client) {
        lh_tool_link_destroy (&link);
        zframe_destroy (&body);
        lh_config_destroy (&config);
        return failure == LH_TOOL_BAD_LINK? S_EXIT_USAGE: S_EXIT_SERVER;
    }
    lh_call_opts_t opts = {
        .timeout_ms = args.timeout_ms,
        .idem = args.idem,
        .trace = *args.trace? args.trace: NULL
    };
    lh_reply_t *reply = NULL;
    int64_t start = zclock_mono ();
    lh_client_call (client, args.svc, args.op,
                    body? zframe_data (body): NULL, body? zframe_size (body): 0,
                    &opts, &reply);
    int exit_code = S_EXIT_SERVER;
    if (reply)
        exit_code = s_show_reply (&args, reply, zclock_mono () - start);
    else
        fprintf (stderr, "buscall: %s.%s: no reply\n", args.svc, args.op);

    lh_reply_destroy (&reply);
    lh_client_destroy (&client);
    lh_tool_link_destroy (&link);
    zframe_destroy (&body);
    lh_config_destroy (&config);
    return exit_code;
}
