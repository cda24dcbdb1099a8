/*  =========================================================================
    bustap - live bus traffic from the broker's tap, one JSON line per
    message, and recordings (.lhrec) for busreplay

    bustap [options]

    --tap ENDPOINT      tap to read (else config bus/tap)
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else the running
                        `lakehouse up` recorded in LAKEHOUSE_HOME/current,
                        else defaults: docs/tools.md "Finding the system")
    --cert FILE         our CURVE certificate, role tap (else config
                        bus/tap_cert, else CERTS/tap.cert of the local set;
                        FILE_secret holds the secret key)
    --server-key KEY    the broker's CURVE public key, Z85 or its public
                        certificate (else bus/server_key, else
                        CERTS/broker.cert)
    --all               also the gateway's own health probes (its
                        broker.ping and broker.services every second)
    --service S         only messages of service S (events: service "evt")
    --op O              only messages of op O (events: the topic)
    --trace T           only messages with trace id T
    --status LIST       only replies whose status matches: 200,404,5xx
    --bodies            add the decoded body (msgpack as JSON)
    --pretty            a human table instead of JSON lines
    --record FILE       write every shown message to FILE (.lhrec)
    --count N           exit after N messages shown
    --hwm N             receive high-water mark (default 1000)
    -q, --quiet         print no message lines (gap warnings still)
    -v, --verbose       debug logging
    -h, --help          this text

    Each line: time (broker receive time), bseq, kind (REQ, PART, REP,
    PUB), src, svc and op (or topic for events), id or cid, tr, st, bytes
    (body size) and, for replies whose request was seen, latency_us (broker
    receipt of the REQ to the reply). A jump in bseq (the tap dropped
    copies because we were slow) prints a warning line
        {"warning": "bseq_gap", "after": 120, "next": 4121, "missed": 4000}

    The reading, filtering, pairing and recording are common/lh_tap.c,
    which `lakehouse up --tap/--record` runs on the broker's in-process
    tap. A refused CURVE handshake (a certificate the tap does not admit,
    a wrong server key) is said at once, naming the certificate, and ends
    it with 1. SIGINT or SIGTERM ends it cleanly (the recording is complete
    up to the last message received). Exit codes: 0 ok, 1 tap unreachable,
    handshake refused or recording write failed, 64 bad command line,
    config or certificate.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_config.h"
#include "lh_log.h"
#include "lh_tool.h"
#include "lh_tap.h"

#define S_EXIT_OK           0
#define S_EXIT_FAILURE      1
#define S_EXIT_USAGE        LH_TOOL_EXIT_USAGE

#define s_bad_usage(...) lh_tool_bad_usage ("bustap", __VA_ARGS__)

//  The command line; filters and output options live in the tap reader
typedef struct {
    const char *tap;                    //  --tap, or NULL
    const char *config;                 //  --config, or NULL
    const char *cert;                   //  --cert, or NULL
    const char *server_key;             //  --server-key, or NULL
    const char *record;                 //  --record, or NULL
    uint64_t count;                     //  --count, 0 = no limit
    int hwm;                            //  --hwm
    bool quiet;                         //  -q
    bool verbose;                       //  -v
} s_args_t;


//  --------------------------------------------------------------------------
//  Print the usage text

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: bustap [options]\n"
        "\n"
        "  --tap ENDPOINT      tap to read (else config bus/tap)\n"
        "  --config FILE       config file (else $LAKEHOUSE_CONFIG, else ./conf/lakehouse.cfg,\n"
        "                      else the running `lakehouse up`, else defaults)\n"
        "  --cert FILE         our CURVE certificate, role tap (else bus/tap_cert,\n"
        "                      else CERTS/tap.cert)\n"
        "  --server-key KEY    the broker's public key or public cert (else\n"
        "                      bus/server_key, else CERTS/broker.cert)\n"
        "  --all               also the gateway's own health probes\n"
        "  --service S         only service S (events: evt)\n"
        "  --op O              only op O (events: the topic)\n"
        "  --trace T           only trace id T\n"
        "  --status LIST       only replies with these statuses: 200,404,5xx\n"
        "  --bodies            add the decoded body as JSON\n"
        "  --pretty            a human table instead of JSON lines\n"
        "  --record FILE       record the shown messages to FILE (.lhrec, for busreplay)\n"
        "  --count N           exit after N messages\n"
        "  --hwm N             receive high-water mark (default 1000)\n"
        "  -q, --quiet         no message lines (gap warnings still)\n"
        "  -v, --verbose       debug logging\n"
        "  -h, --help          this text\n");
}


//  --------------------------------------------------------------------------
//  Parse the command line; the reader's own options go to tap. Returns 0,
//  or an exit code (-1 for --help).

static int
s_parse (s_args_t *args, lh_tap_t *tap, int argc, char *argv [])
{
    memset (args, 0, sizeof (*args));
    args->hwm = LH_TAP_HWM;
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn];
        char *error = NULL;
        int rc = lh_tap_option (tap, argc, argv, &argn, &error);
        if (rc == -1) {
            rc = s_bad_usage ("%s", error);
            free (error);
            return rc;
        }
        if (rc == 1)
            continue;
        if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return -1;
        }
        if (streq (arg, "-v") || streq (arg, "--verbose"))
            args->verbose = true;
        else
        if (streq (arg, "-q") || streq (arg, "--quiet"))
            args->quiet = true;
        else {
            static const char *valued [] = { "--tap", "--config", "--cert", "--server-key",
                "--record", "--count", "--hwm", NULL };
            size_t index = 0;
            while (valued [index] && !streq (valued [index], arg))
                index++;
            if (!valued [index])
                return s_bad_usage ("unknown option '%s'", arg);
            if (argn + 1 >= argc)
                return s_bad_usage ("%s needs a value", arg);
            const char *value = argv [++argn];
            uint64_t number;
            if (streq (arg, "--tap"))           args->tap = value;
            else if (streq (arg, "--config"))   args->config = value;
            else if (streq (arg, "--cert"))     args->cert = value;
            else if (streq (arg, "--record"))   args->record = value;
            else
            if (streq (arg, "--server-key")) {
                char key [LH_UID_SIZE + 1];
                if (lh_tool_server_key (value, key) == -1)
                    return s_bad_usage ("--server-key '%s': give the broker's public key (%d Z85 "
                                        "characters) or its public certificate file", value, LH_UID_SIZE);
                args->server_key = value;
            }
            else
            if (streq (arg, "--count")) {
                if (lh_tool_number (value, 1, UINT64_MAX, &number))
                    return s_bad_usage ("--count '%s': give a number of messages", value);
                args->count = number;
            }
            else {
                if (lh_tool_number (value, 1, 10000000, &number))
                    return s_bad_usage ("--hwm '%s': give 1 to 10000000", value);
                args->hwm = (int) number;
            }
        }
    }
    return 0;
}


int
main (int argc, char *argv [])
{
    lh_tap_t *tap = lh_tap_new ("bustap");
    s_args_t args;
    int rc = s_parse (&args, tap, argc, argv);
    if (rc) {
        lh_tap_destroy (&tap);
        return rc < 0? S_EXIT_OK: rc;
    }
    lh_tap_set_quiet (tap, args.quiet);
    lh_config_t *config = lh_tool_config_load (args.config, "bustap");
    if (!config) {
        lh_tap_destroy (&tap);
        return S_EXIT_USAGE;
    }
    const char *level = lh_config_str (config, "log/level");
    lh_log_set_level (args.verbose? LH_LOG_DEBUG:
                      streq (level, "debug")? LH_LOG_DEBUG:
                      streq (level, "error")? LH_LOG_ERROR: LH_LOG_WARN);
    lh_tool_opts_t opts = { .endpoint = args.tap, .flag = "--tap", .cert = args.cert,
                            .server_key = args.server_key, .tap = true };
    int failure = 0;
    int exit_code = S_EXIT_OK;
    lh_tool_link_t *link = lh_tool_link_new (config, "bustap", &opts, &failure);
    zsock_t *sub = link? lh_tool_link_sub (link, args.hwm, &failure): NULL;
    if (!sub)
        exit_code = failure == LH_TOOL_BAD_LINK? S_EXIT_USAGE: S_EXIT_FAILURE;
    const char *endpoint = link? lh_tool_link_endpoint (link): "";
    char *error = NULL;
    if (sub && args.record
    &&  lh_tap_record (tap, args.record, lh_config_str (config, "broker/name"),
                       endpoint, &error) != 0) {
        fprintf (stderr, "bustap: %s\n", error? error: "cannot create the recording");
        free (error);
        exit_code = S_EXIT_FAILURE;
    }
    if (exit_code != S_EXIT_OK) {
        zsock_destroy (&sub);
        lh_tool_link_destroy (&link);
        lh_tap_destroy (&tap);
        lh_config_destroy (&config);
        return exit_code;
    }
    setvbuf (stdout, NULL, _IOLBF, 0);
    fprintf (stderr, "bustap: listening on %s%s%s\n", endpoint,
             args.record? ", recording to ": "", args.record? args.record: "");

    zpoller_t *poller = zpoller_new (sub, lh_tool_link_watch (link), NULL);
    assert (poller);
    while (exit_code == S_EXIT_OK && !zsys_interrupted) {
        void *which = zpoller_wait (poller, 500);
        if (!which) {
            if (zpoller_terminated (poller))
                break;
            continue;
        }
        if (which == lh_tool_link_watch (link)) {
            if (lh_tool_link_check (link) != 0)
                exit_code = S_EXIT_FAILURE;
            continue;
        }
        //  Drain what is there, then poll again
        while (zsock_events (sub) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (sub);
            if (!msg)
                break;
            if (lh_tap_handle (tap, msg))
                exit_code = S_EXIT_FAILURE;
            zmsg_destroy (&msg);
            if (exit_code || (args.count && lh_tap_shown (tap) >= args.count))
                break;
        }
        if (args.count && lh_tap_shown (tap) >= args.count)
            break;
    }
    char *summary = lh_tap_summary (tap);
    fprintf (stderr, "bustap: %s\n", summary);
    free (summary);
    zpoller_destroy (&poller);
    lh_tap_destroy (&tap);
    zsock_destroy (&sub);
    lh_tool_link_destroy (&link);
    lh_config_destroy (&config);
    return exit_code;
}
