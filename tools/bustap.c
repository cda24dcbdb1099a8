/*  =========================================================================
    bustap - live bus traffic from the broker's tap, one JSON line per
    message, and recordings (.lhrec) for busreplay

    bustap [options]

    --tap ENDPOINT      tap to read (else config bus/tap)
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else defaults)
    --cert FILE         our CURVE certificate (role tap; FILE_secret holds
                        the secret key, as `lakehouse certs new` writes it)
    --server-key KEY    the broker's CURVE public key (Z85), with --cert
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

    SIGINT or SIGTERM ends it cleanly (the recording is complete up to the
    last message received). Exit codes: 0 ok, 1 tap unreachable or
    recording write failed, 64 bad command line or config.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_log.h"
#include "lh_json.h"
#include "lh_lhrec.h"

#define S_EXIT_OK           0
#define S_EXIT_FAILURE      1
#define S_EXIT_USAGE        64
#define S_PENDING_MAX       65536       //  requests remembered for latency
#define S_STATUS_MAX        16          //  entries in --status

//  One status pattern: a code, or a class (5xx)
typedef struct {
    uint32_t low;                       //  first status matched
    uint32_t high;                      //  last status matched
} s_status_t;

//  The command line
typedef struct {
    const char *tap;                    //  --tap, or NULL
    const char *config;                 //  --config, or NULL
    const char *cert;                   //  --cert, or NULL
    const char *server_key;             //  --server-key, or NULL
    char server_key_buf [LH_UID_SIZE + 1];  //  its key, Z85
    const char *service;                //  --service, or NULL
    const char *op;                     //  --op, or NULL
    const char *trace;                  //  --trace, or NULL
    const char *status_text;            //  --status as given, or NULL
    s_status_t status [S_STATUS_MAX];   //  --status, parsed
    size_t statuses;                    //  entries in status
    bool bodies;                        //  --bodies
    bool pretty;                        //  --pretty
    const char *record;                 //  --record, or NULL
    uint64_t count;                     //  --count, 0 = no limit
    int hwm;                            //  --hwm
    bool quiet;                         //  -q
    bool verbose;                       //  -v
} s_args_t;

//  A request seen on the tap, waiting for its reply
typedef struct {
    uint64_t brx;                       //  broker receive time, us
    char tr [LH_TRACE_SIZE + 1];        //  trace id, or ""
    char svc [LH_NAME_MAX + 1];         //  service
    char op [LH_NAME_MAX + 1];          //  op
} s_pending_t;

//  The running tap reader
typedef struct {
    s_args_t *args;                     //  command line
    zhashx_t *pending;                  //  "topic id" -> zlist of s_pending_t
    size_t pending_count;               //  s_pending_t held
    lh_lhrec_t *recording;              //  --record, or NULL
    uint64_t last_bseq;                 //  last bseq seen, 0 = none yet
    uint64_t shown;                     //  messages shown
    uint64_t received;                  //  messages received
    uint64_t gaps;                      //  gaps reported
    uint64_t missed;                    //  messages missed in them
    bool header_printed;                //  --pretty: table header done
} s_tap_t;


//  --------------------------------------------------------------------------
//  Print the usage text

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: bustap [options]\n"
        "\n"
        "  --tap ENDPOINT      tap to read (else config bus/tap)\n"
        "  --config FILE       config file (else $LAKEHOUSE_CONFIG, else ./conf/lakehouse.cfg)\n"
        "  --cert FILE         our CURVE certificate (role tap)\n"
        "  --server-key KEY    the broker's CURVE public key (Z85), with --cert\n"
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
//  Complain about the command line; returns the usage exit code

static int
s_bad_usage (const char *format, ...) CHECK_PRINTF (1);

static int
s_bad_usage (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "bustap: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n(bustap --help for usage)\n");
    va_end (args);
    return S_EXIT_USAGE;
}


//  --------------------------------------------------------------------------
//  Parse --status: comma-separated codes (404) or classes (5xx). Returns 0
//  or -1.

static int
s_parse_status (s_args_t *args, const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        if (args->statuses == S_STATUS_MAX || strlen (item) != 3
        ||  item [0] < '1' || item [0] > '5') {
            rc = -1;
            break;
        }
        s_status_t *status = &args->status [args->statuses++];
        if (streq (item + 1, "xx") || streq (item + 1, "XX")) {
            status->low = (uint32_t) (item [0] - '0') * 100;
            status->high = status->low + 99;
        }
        else
        if (isdigit ((unsigned char) item [1]) && isdigit ((unsigned char) item [2]))
            status->low = status->high = (uint32_t) atoi (item);
        else {
            rc = -1;
            break;
        }
    }
    free (copy);
    return args->statuses? rc: -1;
}


//  --------------------------------------------------------------------------
//  Parse an unsigned number option into *value; returns 0 or -1

static int
s_parse_number (const char *text, uint64_t low, uint64_t high, uint64_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long number = strtoull (text, &end, 10);
    if (!isdigit ((unsigned char) *text) || *end || errno || number < low || number > high)
        return -1;
    *value = number;
    return 0;
}


//  --------------------------------------------------------------------------
//  The broker's public key from --server-key: 40 Z85 characters as they
//  are, or the public certificate file they come from. Returns 0 or -1.

static int
s_server_key (const char *value, char *key)
{
    if (strlen (value) == LH_UID_SIZE) {
        memcpy (key, value, LH_UID_SIZE + 1);
        return 0;
    }
    if (!zsys_file_exists (value))
        return -1;
    zcert_t *cert = zcert_load (value);
    if (!cert)
        return -1;
    snprintf (key, LH_UID_SIZE + 1, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}


//  --------------------------------------------------------------------------
//  Parse the command line. Returns 0, or an exit code (-1 for --help).

static int
s_parse (s_args_t *args, int argc, char *argv [])
{
    memset (args, 0, sizeof (*args));
    args->hwm = 1000;
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn];
        if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return -1;
        }
        if (streq (arg, "-v") || streq (arg, "--verbose"))
            args->verbose = true;
        else
        if (streq (arg, "-q") || streq (arg, "--quiet"))
            args->quiet = true;
        else
        if (streq (arg, "--bodies"))
            args->bodies = true;
        else
        if (streq (arg, "--pretty"))
            args->pretty = true;
        else {
            static const char *valued [] = { "--tap", "--config", "--cert", "--server-key",
                "--service", "--op", "--trace", "--status", "--record", "--count", "--hwm", NULL };
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
            else if (streq (arg, "--service"))  args->service = value;
            else if (streq (arg, "--op"))       args->op = value;
            else if (streq (arg, "--record"))   args->record = value;
            else
            if (streq (arg, "--server-key")) {
                if (s_server_key (value, args->server_key_buf) == -1)
                    return s_bad_usage ("--server-key '%s': give the broker's public key (%d Z85 "
                                        "characters) or its public certificate file", value, LH_UID_SIZE);
                args->server_key = args->server_key_buf;
            }
            else
            if (streq (arg, "--trace")) {
                if (strlen (value) != LH_TRACE_SIZE)
                    return s_bad_usage ("--trace '%s': a trace id is %d hex digits", value, LH_TRACE_SIZE);
                args->trace = value;
            }
            else
            if (streq (arg, "--status")) {
                if (s_parse_status (args, value))
                    return s_bad_usage ("--status '%s': give codes or classes like 200,404,5xx", value);
                args->status_text = value;
            }
            else
            if (streq (arg, "--count")) {
                if (s_parse_number (value, 1, UINT64_MAX, &number))
                    return s_bad_usage ("--count '%s': give a number of messages", value);
                args->count = number;
            }
            else {
                if (s_parse_number (value, 1, 10000000, &number))
                    return s_bad_usage ("--hwm '%s': give 1 to 10000000", value);
                args->hwm = (int) number;
            }
        }
    }
    if (args->cert && !args->server_key)
        return s_bad_usage ("--cert needs --server-key (the broker's public key)");
    if (args->server_key && !args->cert)
        return s_bad_usage ("--server-key needs --cert (our certificate)");
    return 0;
}


//  --------------------------------------------------------------------------
//  Load the config: --config, else $LAKEHOUSE_CONFIG, else
//  ./conf/lakehouse.cfg if present, else defaults

static lh_config_t *
s_config_load (const char *path)
{
    if (!path) {
        const char *env = getenv ("LAKEHOUSE_CONFIG");
        if (env && *env)
            path = env;
        else
        if (zsys_file_exists ("conf/lakehouse.cfg"))
            path = "conf/lakehouse.cfg";
    }
    char *error = NULL;
    lh_config_t *config = lh_config_load (path, &error);
    if (!config) {
        fprintf (stderr, "bustap: %s\n", error? error: "cannot load the config");
        free (error);
    }
    return config;
}


//  --------------------------------------------------------------------------
//  Format a time in us since the epoch as ISO 8601 UTC with microseconds

static void
s_format_time (uint64_t us, char *buffer, size_t size)
{
    time_t seconds = (time_t) (us / 1000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char base [32];
    strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buffer, size, "%s.%06uZ", base, (unsigned) (us % 1000000));
}


//  --------------------------------------------------------------------------
//  Destroy a zlist of pending requests (zhashx destructor)

static void
s_pending_list_destroy (void **item_p)
{
    zlist_t *list = (zlist_t *) *item_p;
    if (list) {
        for (void *entry = zlist_first (list); entry; entry = zlist_next (list))
            free (entry);
        zlist_destroy (&list);
    }
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Remember a REQ for its reply's latency and svc/op

static void
s_pending_add (s_tap_t *self, const char *topic, const lh_header_t *header)
{
    if (self->pending_count >= S_PENDING_MAX) {
        zhashx_purge (self->pending);   //  replies to these lose their latency
        self->pending_count = 0;
    }
    char key [LH_LHREC_TOPIC_MAX + 32];
    snprintf (key, sizeof key, "%s %" PRIu64, topic, header->id);
    zlist_t *list = (zlist_t *) zhashx_lookup (self->pending, key);
    if (!list) {
        list = zlist_new ();
        assert (list);
        zhashx_insert (self->pending, key, list);
    }
    s_pending_t *entry = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    assert (entry);
    entry->brx = header->brx;
    snprintf (entry->tr, sizeof entry->tr, "%s", (header->has & LH_H_TR)? header->tr: "");
    snprintf (entry->svc, sizeof entry->svc, "%s", header->svc);
    snprintf (entry->op, sizeof entry->op, "%s", header->op);
    zlist_append (list, entry);
    self->pending_count++;
}


//  --------------------------------------------------------------------------
//  Find the REQ a PART/REP answers: same topic and id, the same trace id
//  when both carry one, else the oldest. A REP removes it: the caller
//  frees the returned copy in *found (false if none).

static bool
s_pending_find (s_tap_t *self, const char *topic, const lh_header_t *header,
                s_pending_t *found)
{
    char key [LH_LHREC_TOPIC_MAX + 32];
    snprintf (key, sizeof key, "%s %" PRIu64, topic, header->cid);
    zlist_t *list = (zlist_t *) zhashx_lookup (self->pending, key);
    if (!list)
        return false;
    s_pending_t *match = NULL;
    if (header->has & LH_H_TR)
        for (s_pending_t *entry = (s_pending_t *) zlist_first (list); entry;
             entry = (s_pending_t *) zlist_next (list))
            if (streq (entry->tr, header->tr)) {
                match = entry;
                break;
            }
    if (!match)
        match = (s_pending_t *) zlist_first (list);
    if (!match)
        return false;
    *found = *match;
    if (header->t == LH_T_REP) {
        zlist_remove (list, match);
        free (match);
        self->pending_count--;
        if (zlist_size (list) == 0)
            zhashx_delete (self->pending, key);
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Does a status match --status

static bool
s_status_matches (s_args_t *args, const lh_header_t *header)
{
    if (!args->statuses)
        return true;
    if (!(header->has & LH_H_ST))
        return false;
    for (size_t index = 0; index < args->statuses; index++)
        if (header->st >= args->status [index].low && header->st <= args->status [index].high)
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Report a bseq jump before this message: every bseq the broker issues is
//  tapped, so a jump means the tap dropped copies

static void
s_check_gap (s_tap_t *self, const lh_header_t *header)
{
    if (!(header->has & LH_H_BSEQ))
        return;
    uint64_t bseq = header->bseq;
    uint64_t last = self->last_bseq;
    self->last_bseq = bseq;
    if (last == 0 || bseq == last + 1)
        return;
    if (bseq <= last) {
        printf (self->args->pretty
                ? "!! bseq went back from %" PRIu64 " to %" PRIu64 " (broker restarted?)\n"
                : "{\"warning\": \"bseq_reset\", \"after\": %" PRIu64 ", \"next\": %" PRIu64 "}\n",
                last, bseq);
        return;
    }
    uint64_t missed = bseq - last - 1;
    self->gaps++;
    self->missed += missed;
    printf (self->args->pretty
            ? "!! bseq gap: %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " message(s) missed (the tap dropped them)\n"
            : "{\"warning\": \"bseq_gap\", \"after\": %" PRIu64 ", \"next\": %" PRIu64 ", \"missed\": %" PRIu64 "}\n",
            last, bseq, missed);
}


//  --------------------------------------------------------------------------
//  Print one message as a JSON line or a table row

static void
s_show (s_tap_t *self, const char *svc, const char *op, const lh_header_t *header,
        zframe_t *body, bool has_latency, uint64_t latency_us)
{
    s_args_t *args = self->args;
    char when [48];
    s_format_time ((header->has & LH_H_BRX)? header->brx: (uint64_t) zclock_time () * 1000,
                   when, sizeof when);
    const char *kind = lh_type_name (header->t);
    size_t bytes = body? zframe_size (body): 0;
    json_t *decoded = NULL;
    char *decode_error = NULL;
    if (args->bodies && bytes > 0)
        decoded = lh_json_from_msgpack (zframe_data (body), bytes, NULL, &decode_error);

    if (args->pretty) {
        if (!self->header_printed) {
            printf ("%-15s %8s %-4s %-14s %-28s %8s %4s %8s %10s\n",
                    "time", "bseq", "kind", "src", "svc.op / topic", "id", "st", "bytes", "latency");
            self->header_printed = true;
        }
        char name [LH_LHREC_TOPIC_MAX + 1];
        if (header->t == LH_T_PUB)
            snprintf (name, sizeof name, "%s", header->topic);
        else
            snprintf (name, sizeof name, "%s.%s", svc, op);
        char id [24] = "-", st [8] = "-", latency [24] = "-";
        if ((header->has & LH_H_ID) && header->t != LH_T_REP && header->t != LH_T_PART)
            snprintf (id, sizeof id, "%" PRIu64, header->id);
        if (header->has & LH_H_CID)
            snprintf (id, sizeof id, "%" PRIu64, header->cid);
        if (header->has & LH_H_ST)
            snprintf (st, sizeof st, "%u", header->st);
        if (has_latency)
            snprintf (latency, sizeof latency, "%.3f ms", latency_us / 1000.0);
        printf ("%-15.15s %8" PRIu64 " %-4s %-14.14s %-28.28s %8s %4s %8zu %10s\n",
                when + 11, header->bseq, kind, header->src, name, id, st, bytes, latency);
        if (decoded || decode_error) {
            char *text = decoded? json_dumps (decoded, JSON_ENCODE_ANY | JSON_COMPACT): NULL;
            printf ("                 %s\n", text? text: decode_error);
            free (text);
        }
    }
    else {
        json_t *line = json_object ();
        json_object_set_new (line, "time", json_string (when));
        json_object_set_new (line, "bseq", json_integer ((json_int_t) header->bseq));
        json_object_set_new (line, "kind", json_string (kind));
        json_object_set_new (line, "src", json_string (header->src));
        if (header->t == LH_T_PUB)
            json_object_set_new (line, "topic", json_string (header->topic));
        else {
            json_object_set_new (line, "svc", json_string (svc));
            json_object_set_new (line, "op", json_string (op));
        }
        if ((header->has & LH_H_ID) && header->t != LH_T_REP && header->t != LH_T_PART)
            json_object_set_new (line, "id", json_integer ((json_int_t) header->id));
        if (header->has & LH_H_CID)
            json_object_set_new (line, "cid", json_integer ((json_int_t) header->cid));
        if (header->has & LH_H_TR)
            json_object_set_new (line, "tr", json_string (header->tr));
        if (header->has & LH_H_ST)
            json_object_set_new (line, "st", json_integer (header->st));
        json_object_set_new (line, "bytes", json_integer ((json_int_t) bytes));
        if (has_latency)
            json_object_set_new (line, "latency_us", json_integer ((json_int_t) latency_us));
        if (decoded)
            json_object_set (line, "body", decoded);
        else
        if (decode_error)
            json_object_set_new (line, "body_error", json_string (decode_error));
        char *text = json_dumps (line, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text)
            printf ("%s\n", text);
        free (text);
        json_decref (line);
    }
    json_decref (decoded);
    free (decode_error);
}


//  --------------------------------------------------------------------------
//  Handle one tap message [topic] [header] [body?]. Returns 0, or -1 if
//  the recording could not be written.

static int
s_handle (s_tap_t *self, zmsg_t *msg)
{
    s_args_t *args = self->args;
    size_t frames = zmsg_size (msg);
    zframe_t *topic_frame = zmsg_first (msg);
    zframe_t *header_frame = zmsg_next (msg);
    zframe_t *body = zmsg_next (msg);
    lh_header_t header;
    if (frames < 2 || frames > 3 || zframe_size (topic_frame) > LH_LHREC_TOPIC_MAX
    ||  lh_header_decode (&header, zframe_data (header_frame), zframe_size (header_frame))) {
        fprintf (stderr, "bustap: a tap message that is not [topic] [header] [body] was skipped\n");
        return 0;
    }
    self->received++;
    char topic [LH_LHREC_TOPIC_MAX + 1];
    memcpy (topic, zframe_data (topic_frame), zframe_size (topic_frame));
    topic [zframe_size (topic_frame)] = 0;
    s_check_gap (self, &header);

    //  Which service and op: the REQ says; a reply takes its request's;
    //  an event is "evt" and its topic
    char svc [LH_NAME_MAX + 1] = "", op [LH_TOPIC_MAX + 1] = "";
    bool has_latency = false;
    uint64_t latency = 0;
    if (header.t == LH_T_REQ) {
        snprintf (svc, sizeof svc, "%s", header.svc);
        snprintf (op, sizeof op, "%s", header.op);
        s_pending_add (self, topic, &header);
    }
    else
    if (header.t == LH_T_PUB) {
        snprintf (svc, sizeof svc, "evt");
        snprintf (op, sizeof op, "%s", header.topic);
    }
    else {
        s_pending_t request;
        if ((header.has & LH_H_CID) && s_pending_find (self, topic, &header, &request)) {
            snprintf (svc, sizeof svc, "%s", request.svc);
            snprintf (op, sizeof op, "%s", request.op);
            if (header.t == LH_T_REP && (header.has & LH_H_BRX) && header.brx >= request.brx) {
                has_latency = true;
                latency = header.brx - request.brx;
            }
        }
        else {
            const char *dot = strchr (topic, '.');
            size_t length = dot? (size_t) (dot - topic): strlen (topic);
            snprintf (svc, sizeof svc, "%.*s", (int) (length < LH_NAME_MAX? length: LH_NAME_MAX), topic);
            snprintf (op, sizeof op, "%s", dot? dot + 1: "");
        }
    }
    if ((args->service && !streq (args->service, svc))
    ||  (args->op && !streq (args->op, op))
    ||  (args->trace && !((header.has & LH_H_TR) && streq (header.tr, args->trace)))
    ||  !s_status_matches (args, &header))
        return 0;

    self->shown++;
    if (self->recording
    &&  lh_lhrec_write (self->recording, (uint64_t) zclock_time () * 1000, topic,
                        zframe_data (header_frame), zframe_size (header_frame),
                        body? zframe_data (body): NULL, body? zframe_size (body): 0)) {
        fprintf (stderr, "bustap: cannot write %s: %s\n", args->record, strerror (errno));
        return -1;
    }
    if (!args->quiet)
        s_show (self, svc, op, &header, body, has_latency, latency);
    return 0;
}


int
main (int argc, char *argv [])
{
    s_args_t args;
    int rc = s_parse (&args, argc, argv);
    if (rc)
        return rc < 0? S_EXIT_OK: rc;
    lh_config_t *config = s_config_load (args.config);
    if (!config)
        return S_EXIT_USAGE;
    const char *level = lh_config_str (config, "log/level");
    lh_log_set_level (args.verbose? LH_LOG_DEBUG:
                      streq (level, "debug")? LH_LOG_DEBUG:
                      streq (level, "error")? LH_LOG_ERROR: LH_LOG_WARN);
    const char *endpoint = args.tap? args.tap: lh_config_str (config, "bus/tap");
    if (!*endpoint) {
        fprintf (stderr, "bustap: no tap: config bus/tap is empty and no --tap given\n");
        lh_config_destroy (&config);
        return S_EXIT_USAGE;
    }
    setvbuf (stdout, NULL, _IOLBF, 0);

    //  The SUB socket: CURVE client when given a certificate
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, args.hwm);
    zsock_set_linger (sub, 0);
    zcert_t *cert = NULL;
    if (args.cert) {
        cert = zcert_load (args.cert);
        if (!cert) {
            fprintf (stderr, "bustap: cannot load the certificate '%s'\n", args.cert);
            zsock_destroy (&sub);
            lh_config_destroy (&config);
            return S_EXIT_USAGE;
        }
        zcert_apply (cert, sub);
        zsock_set_curve_serverkey (sub, args.server_key);
    }
    zsock_set_subscribe (sub, "");
    if (zsock_connect (sub, "%s", endpoint) == -1) {
        fprintf (stderr, "bustap: cannot connect to the tap at %s: %s\n",
                 endpoint, zmq_strerror (zmq_errno ()));
        zcert_destroy (&cert);
        zsock_destroy (&sub);
        lh_config_destroy (&config);
        return S_EXIT_FAILURE;
    }

    s_tap_t tap = { .args = &args };
    tap.pending = zhashx_new ();
    assert (tap.pending);
    zhashx_set_destructor (tap.pending, s_pending_list_destroy);
    int exit_code = S_EXIT_OK;
    if (args.record) {
        lh_lhrec_info_t info = { .version = 0 };
        snprintf (info.broker, sizeof info.broker, "%s", lh_config_str (config, "broker/name"));
        snprintf (info.tap, sizeof info.tap, "%s", endpoint);
        snprintf (info.service, sizeof info.service, "%s", args.service? args.service: "");
        snprintf (info.op, sizeof info.op, "%s", args.op? args.op: "");
        snprintf (info.trace, sizeof info.trace, "%s", args.trace? args.trace: "");
        snprintf (info.status, sizeof info.status, "%s", args.status_text? args.status_text: "");
        char *error = NULL;
        tap.recording = lh_lhrec_create (args.record, &info, &error);
        if (!tap.recording) {
            fprintf (stderr, "bustap: %s\n", error? error: "cannot create the recording");
            free (error);
            exit_code = S_EXIT_FAILURE;
        }
    }
    if (exit_code == S_EXIT_OK)
        fprintf (stderr, "bustap: listening on %s%s%s\n", endpoint,
                 args.record? ", recording to ": "", args.record? args.record: "");

    zpoller_t *poller = zpoller_new (sub, NULL);
    assert (poller);
    while (exit_code == S_EXIT_OK && !zsys_interrupted) {
        if (!zpoller_wait (poller, 500)) {
            if (zpoller_terminated (poller))
                break;
            continue;
        }
        //  Drain what is there, then poll again
        while (zsock_events (sub) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (sub);
            if (!msg)
                break;
            if (s_handle (&tap, msg))
                exit_code = S_EXIT_FAILURE;
            zmsg_destroy (&msg);
            if (exit_code || (args.count && tap.shown >= args.count))
                break;
        }
        if (args.count && tap.shown >= args.count)
            break;
    }
    fprintf (stderr, "bustap: %" PRIu64 " received, %" PRIu64 " shown, %" PRIu64
             " gap(s), %" PRIu64 " missed\n", tap.received, tap.shown, tap.gaps, tap.missed);
    zpoller_destroy (&poller);
    lh_lhrec_destroy (&tap.recording);
    zhashx_destroy (&tap.pending);
    zcert_destroy (&cert);
    zsock_destroy (&sub);
    lh_config_destroy (&config);
    return exit_code;
}
