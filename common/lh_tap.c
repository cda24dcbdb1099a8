/*  =========================================================================
    lh_tap - a reader of the broker's tap (see lh_tap.h)

    Pairing. A REQ is remembered (its brx, svc, op, trace id) until its
    REP, indexed two ways: by its bseq, which the broker's PART/REP copies
    name in "rseq", and by "topic client-id", for a broker that does not
    send rseq (then the trace id breaks ties, else the oldest wins). At
    most S_PENDING_MAX are remembered; past that they are forgotten and
    their replies show without latency.
    =========================================================================
*/

#include "lh_tap.h"
#include "lh_body.h"
#include "lh_log.h"
#include "lh_json.h"
#include "lh_lhrec.h"
#include <poll.h>
#include <sys/stat.h>

//  The actor writes output that can block (a pipe, a socket, a terminal)
//  in pieces of at most this size, each when poll says there is room
#define S_WRITE_CHUNK   4096
//  At $TERM, how long the actor waits for room to write what is left
#define S_FINAL_WAIT_MS 200

#define S_PENDING_MAX       65536       //  requests remembered for latency
#define S_STATUS_MAX        16          //  entries in --status
#define S_KEY_MAX           (LH_LHREC_TOPIC_MAX + 32)

//  One status pattern: a code, or a class (5xx)
typedef struct {
    uint32_t low;                       //  first status matched
    uint32_t high;                      //  last status matched
} s_status_t;

//  A request seen on the tap, waiting for its reply
typedef struct {
    uint64_t bseq;                      //  its broker sequence number
    uint64_t brx;                       //  broker receive time, us
    char tr [LH_TRACE_SIZE + 1];        //  trace id, or ""
    char svc [LH_NAME_MAX + 1];         //  service
    char op [LH_NAME_MAX + 1];          //  op
    char key [S_KEY_MAX];               //  "topic id" of its list
    bool probe;                         //  a gateway health probe (hidden)
} s_pending_t;

//  The reader
struct _lh_tap_t {
    char tool [LH_NAME_MAX + 1];        //  who we are, in messages
    FILE *out;                          //  where lines go (borrowed)
    char *service;                      //  --service, or NULL
    char *op;                           //  --op, or NULL
    char *trace;                        //  --trace, or NULL
    char *status_text;                  //  --status as given, or NULL
    s_status_t status [S_STATUS_MAX];   //  --status, parsed
    size_t statuses;                    //  entries in status
    bool bodies;                        //  --bodies
    bool pretty;                        //  --pretty
    bool all;                           //  --all: the gateway's health probes too
    bool quiet;                         //  no message lines
    zhashx_t *pending;                  //  "topic id" -> zlist of s_pending_t
    zhashx_t *by_bseq;                  //  "bseq" -> s_pending_t (same items)
    size_t pending_count;               //  s_pending_t held
    lh_lhrec_t *recording;              //  recording, or NULL
    char *record_path;                  //  its path, or NULL
    bool failed;                        //  the recording failed
    uint64_t last_bseq;                 //  last bseq seen, 0 = none yet
    uint64_t received;                  //  messages received
    uint64_t shown;                     //  messages shown
    uint64_t hidden;                    //  health probes and replies not shown
    uint64_t skipped;                   //  messages not [topic] [header] [body]
    uint64_t gaps;                      //  gaps reported
    uint64_t missed;                    //  messages missed in them
    bool header_printed;                //  --pretty: table header done
    //  The actor, when its output can block: lines go to a memory stream
    //  (out) and are written to sink while the pipe is watched
    FILE *sink;                         //  the real output, or NULL
    char *held;                         //  the memory stream's buffer
    size_t held_size;                   //  bytes in it
    zmsg_t *command;                    //  a command that came while writing
    bool terminating;                   //  $TERM came while writing
    int write_wait;                     //  ms to wait for room, -1 = no limit
    size_t unwritten;                   //  bytes the output did not take
    bool sink_closed;                   //  the output's reader went away
    lh_tap_line_fn *line_fn;            //  takes the lines instead, or NULL
    void *line_arg;                     //  its argument
};


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
//  Create a reader printing to stdout

lh_tap_t *
lh_tap_new (const char *tool)
{
    lh_tap_t *self = (lh_tap_t *) zmalloc (sizeof (lh_tap_t));
    assert (self);
    snprintf (self->tool, sizeof self->tool, "%s", tool? tool: "tap");
    self->out = stdout;
    self->pending = zhashx_new ();
    assert (self->pending);
    zhashx_set_destructor (self->pending, s_pending_list_destroy);
    self->by_bseq = zhashx_new ();
    assert (self->by_bseq);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a reader, closing its recording

void
lh_tap_destroy (lh_tap_t **self_p)
{
    assert (self_p);
    lh_tap_t *self = *self_p;
    if (!self)
        return;
    lh_lhrec_destroy (&self->recording);
    zhashx_destroy (&self->by_bseq);
    zhashx_destroy (&self->pending);
    free (self->service);
    free (self->op);
    free (self->trace);
    free (self->status_text);
    free (self->record_path);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Parse --status: comma-separated codes (404) or classes (5xx). Returns 0
//  or -1.

static int
s_parse_status (lh_tap_t *self, const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    self->statuses = 0;
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        if (self->statuses == S_STATUS_MAX || strlen (item) != 3
        ||  item [0] < '1' || item [0] > '5') {
            rc = -1;
            break;
        }
        s_status_t *status = &self->status [self->statuses++];
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
    if (rc || !self->statuses) {
        self->statuses = 0;
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Replace a string option

static void
s_set_text (char **field, const char *value)
{
    free (*field);
    *field = strdup (value);
    assert (*field);
}


//  --------------------------------------------------------------------------
//  Take one reader option from argv [*argn]

int
lh_tap_option (lh_tap_t *self, int argc, char *argv [], int *argn, char **error_p)
{
    assert (self);
    const char *arg = argv [*argn];
    if (streq (arg, "--bodies")) {
        self->bodies = true;
        return 1;
    }
    if (streq (arg, "--pretty")) {
        self->pretty = true;
        return 1;
    }
    if (streq (arg, "--all")) {
        self->all = true;
        return 1;
    }
    static const char *valued [] = { "--service", "--op", "--trace", "--status", NULL };
    const char *name = NULL;
    const char *value = NULL;
    for (size_t index = 0; valued [index] && !name; index++) {
        size_t length = strlen (valued [index]);
        if (strncmp (arg, valued [index], length) == 0) {
            if (arg [length] == '=') {
                name = valued [index];
                value = arg + length + 1;
            }
            else
            if (arg [length] == '\0')
                name = valued [index];
        }
    }
    if (!name)
        return 0;
    if (!value) {
        if (*argn + 1 >= argc) {
            *error_p = zsys_sprintf ("%s needs a value", name);
            return -1;
        }
        value = argv [++*argn];
    }
    if (streq (name, "--service"))
        s_set_text (&self->service, value);
    else
    if (streq (name, "--op"))
        s_set_text (&self->op, value);
    else
    if (streq (name, "--trace")) {
        if (strlen (value) != LH_TRACE_SIZE) {
            *error_p = zsys_sprintf ("--trace '%s': a trace id is %d hex digits",
                                     value, LH_TRACE_SIZE);
            return -1;
        }
        s_set_text (&self->trace, value);
    }
    else {
        if (s_parse_status (self, value)) {
            *error_p = zsys_sprintf ("--status '%s': give codes or classes like "
                                     "200,404,5xx", value);
            return -1;
        }
        s_set_text (&self->status_text, value);
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  Print no message lines

void
lh_tap_set_quiet (lh_tap_t *self, bool quiet)
{
    assert (self);
    self->quiet = quiet;
}


//  --------------------------------------------------------------------------
//  Print to file instead of stdout

void
lh_tap_set_output (lh_tap_t *self, FILE *file)
{
    assert (self);
    assert (file);
    self->out = file;
}


//  --------------------------------------------------------------------------
//  Hand every line to fn instead of the output

void
lh_tap_set_handler (lh_tap_t *self, lh_tap_line_fn *fn, void *arg)
{
    assert (self);
    self->line_fn = fn;
    self->line_arg = arg;
}


//  --------------------------------------------------------------------------
//  Record every shown message to path

int
lh_tap_record (lh_tap_t *self, const char *path, const char *broker,
               const char *endpoint, char **error_p)
{
    assert (self);
    assert (path);
    lh_lhrec_info_t info = { .version = 0 };
    snprintf (info.broker, sizeof info.broker, "%s", broker? broker: "");
    snprintf (info.tap, sizeof info.tap, "%s", endpoint? endpoint: "");
    snprintf (info.tool, sizeof info.tool, "%s", self->tool);
    snprintf (info.service, sizeof info.service, "%s", self->service? self->service: "");
    snprintf (info.op, sizeof info.op, "%s", self->op? self->op: "");
    snprintf (info.trace, sizeof info.trace, "%s", self->trace? self->trace: "");
    snprintf (info.status, sizeof info.status, "%s", self->status_text? self->status_text: "");
    lh_lhrec_destroy (&self->recording);
    self->recording = lh_lhrec_create (path, &info, error_p);
    if (!self->recording)
        return -1;
    s_set_text (&self->record_path, path);
    return 0;
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
//  Is a REQ one of the gateway's own health probes: broker.ping or
//  broker.services from its health client ("NAME-health" in `lakehouse
//  up`; a standalone gateway's calls carry its certificate's name,
//  "gateway")

static bool
s_is_probe (const lh_header_t *header)
{
    if (!streq (header->svc, "broker")
    ||  !(streq (header->op, "ping") || streq (header->op, "services")))
        return false;
    size_t size = strlen (header->src);
    return streq (header->src, "gateway")
        || (size > 7 && streq (header->src + size - 7, "-health"));
}


//  --------------------------------------------------------------------------
//  Remember a REQ for its replies' svc/op and latency

static void
s_pending_add (lh_tap_t *self, const char *topic, const lh_header_t *header, bool probe)
{
    if (self->pending_count >= S_PENDING_MAX) {
        zhashx_purge (self->by_bseq);   //  replies to these lose their latency
        zhashx_purge (self->pending);
        self->pending_count = 0;
    }
    s_pending_t *entry = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    assert (entry);
    entry->bseq = header->bseq;
    entry->brx = header->brx;
    snprintf (entry->tr, sizeof entry->tr, "%s", (header->has & LH_H_TR)? header->tr: "");
    snprintf (entry->svc, sizeof entry->svc, "%s", header->svc);
    snprintf (entry->op, sizeof entry->op, "%s", header->op);
    snprintf (entry->key, sizeof entry->key, "%s %" PRIu64, topic, header->id);
    entry->probe = probe;
    zlist_t *list = (zlist_t *) zhashx_lookup (self->pending, entry->key);
    if (!list) {
        list = zlist_new ();
        assert (list);
        zhashx_insert (self->pending, entry->key, list);
    }
    zlist_append (list, entry);
    if (header->has & LH_H_BSEQ) {
        char bseq [24];
        snprintf (bseq, sizeof bseq, "%" PRIu64, header->bseq);
        zhashx_update (self->by_bseq, bseq, entry);
    }
    self->pending_count++;
}


//  --------------------------------------------------------------------------
//  Forget a pending request (its REP came)

static void
s_pending_remove (lh_tap_t *self, s_pending_t *entry)
{
    char bseq [24];
    snprintf (bseq, sizeof bseq, "%" PRIu64, entry->bseq);
    if (zhashx_lookup (self->by_bseq, bseq) == entry)
        zhashx_delete (self->by_bseq, bseq);
    zlist_t *list = (zlist_t *) zhashx_lookup (self->pending, entry->key);
    if (list) {
        zlist_remove (list, entry);
        if (zlist_size (list) == 0)
            zhashx_delete (self->pending, entry->key);
    }
    free (entry);
    self->pending_count--;
}


//  --------------------------------------------------------------------------
//  Find the REQ a PART/REP answers: by rseq when the copy has one, else
//  same topic and id, the same trace id when both carry one, else the
//  oldest. A REP forgets it. Returns true and a copy in *found, or false.

static bool
s_pending_find (lh_tap_t *self, const char *topic, const lh_header_t *header,
                uint64_t rseq, s_pending_t *found)
{
    s_pending_t *match = NULL;
    if (rseq) {
        char bseq [24];
        snprintf (bseq, sizeof bseq, "%" PRIu64, rseq);
        match = (s_pending_t *) zhashx_lookup (self->by_bseq, bseq);
        if (!match)
            return false;               //  not seen: never guess
    }
    else {
        char key [S_KEY_MAX];
        snprintf (key, sizeof key, "%s %" PRIu64, topic, header->cid);
        zlist_t *list = (zlist_t *) zhashx_lookup (self->pending, key);
        if (!list)
            return false;
        if (header->has & LH_H_TR)
            for (s_pending_t *entry = (s_pending_t *) zlist_first (list); entry && !match;
                 entry = (s_pending_t *) zlist_next (list))
                if (streq (entry->tr, header->tr))
                    match = entry;
        if (!match)
            match = (s_pending_t *) zlist_first (list);
        if (!match)
            return false;
    }
    *found = *match;
    if (header->t == LH_T_REP)
        s_pending_remove (self, match);
    return true;
}


//  --------------------------------------------------------------------------
//  Does a status match --status

static bool
s_status_matches (lh_tap_t *self, const lh_header_t *header)
{
    if (!self->statuses)
        return true;
    if (!(header->has & LH_H_ST))
        return false;
    for (size_t index = 0; index < self->statuses; index++)
        if (header->st >= self->status [index].low && header->st <= self->status [index].high)
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Report a bseq jump before this message: every bseq the broker issues is
//  tapped, so a jump means the tap dropped copies

static void
s_check_gap (lh_tap_t *self, const lh_header_t *header)
{
    if (!(header->has & LH_H_BSEQ))
        return;
    uint64_t bseq = header->bseq;
    uint64_t last = self->last_bseq;
    self->last_bseq = bseq;
    if (last == 0 || bseq == last + 1)
        return;
    char text [160];
    if (bseq <= last) {
        if (self->line_fn) {
            int size = snprintf (text, sizeof text, "{\"warning\":\"bseq_reset\",\"after\":%"
                                 PRIu64 ",\"next\":%" PRIu64 "}", last, bseq);
            lh_tap_line_t line = { .svc = "", .op = "", .tr = "", .bseq = bseq,
                                   .warning = true, .json = text, .size = (size_t) size };
            self->line_fn (self->line_arg, &line);
        }
        else
            fprintf (self->out, self->pretty
                     ? "!! bseq went back from %" PRIu64 " to %" PRIu64 " (broker restarted?)\n"
                     : "{\"warning\": \"bseq_reset\", \"after\": %" PRIu64 ", \"next\": %" PRIu64 "}\n",
                     last, bseq);
        return;
    }
    uint64_t missed = bseq - last - 1;
    self->gaps++;
    self->missed += missed;
    if (self->line_fn) {
        int size = snprintf (text, sizeof text, "{\"warning\":\"bseq_gap\",\"after\":%" PRIu64
                             ",\"next\":%" PRIu64 ",\"missed\":%" PRIu64 "}", last, bseq, missed);
        lh_tap_line_t line = { .svc = "", .op = "", .tr = "", .bseq = bseq,
                               .warning = true, .json = text, .size = (size_t) size };
        self->line_fn (self->line_arg, &line);
        return;
    }
    fprintf (self->out, self->pretty
             ? "!! bseq gap: %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " message(s) missed (the tap dropped them)\n"
             : "{\"warning\": \"bseq_gap\", \"after\": %" PRIu64 ", \"next\": %" PRIu64 ", \"missed\": %" PRIu64 "}\n",
             last, bseq, missed);
}


//  --------------------------------------------------------------------------
//  Print one message as a table row (--pretty)

static void
s_show_row (lh_tap_t *self, const char *svc, const char *op, const lh_header_t *header,
            const char *when, size_t bytes, bool has_latency, uint64_t latency_us,
            json_t *decoded, const char *decode_error)
{
    if (!self->header_printed) {
        fprintf (self->out, "%-15s %8s %-4s %-14s %-28s %8s %4s %8s %10s\n",
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
    fprintf (self->out, "%-15.15s %8" PRIu64 " %-4s %-14.14s %-28.28s %8s %4s %8zu %10s\n",
             when + 11, header->bseq, lh_type_name (header->t), header->src, name,
             id, st, bytes, latency);
    if (decoded || decode_error) {
        char *text = decoded? json_dumps (decoded, JSON_ENCODE_ANY | JSON_COMPACT): NULL;
        fprintf (self->out, "                 %s\n", text? text: decode_error);
        free (text);
    }
}


//  --------------------------------------------------------------------------
//  Print one message as a JSON line or a table row

static void
s_show (lh_tap_t *self, const char *svc, const char *op, const lh_header_t *header,
        uint64_t rseq, zframe_t *body, bool has_latency, uint64_t latency_us)
{
    char when [48];
    s_format_time ((header->has & LH_H_BRX)? header->brx: (uint64_t) zclock_time () * 1000,
                   when, sizeof when);
    size_t bytes = body? zframe_size (body): 0;
    json_t *decoded = NULL;
    char *decode_error = NULL;
    if (self->bodies && bytes > 0)
        decoded = lh_json_from_msgpack (zframe_data (body), bytes, NULL, &decode_error);

    if (self->pretty && !self->line_fn)
        s_show_row (self, svc, op, header, when, bytes, has_latency, latency_us,
                    decoded, decode_error);
    else {
        json_t *line = json_object ();
        json_object_set_new (line, "time", json_string (when));
        json_object_set_new (line, "bseq", json_integer ((json_int_t) header->bseq));
        json_object_set_new (line, "kind", json_string (lh_type_name (header->t)));
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
        if (rseq)
            json_object_set_new (line, "rseq", json_integer ((json_int_t) rseq));
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
        if (text && self->line_fn) {
            lh_tap_line_t shown = {
                .svc = svc, .op = op, .tr = (header->has & LH_H_TR)? header->tr: "",
                .st = (header->has & LH_H_ST)? header->st: 0,
                .bseq = (header->has & LH_H_BSEQ)? header->bseq: 0,
                .json = text, .size = strlen (text)
            };
            self->line_fn (self->line_arg, &shown);
        }
        else
        if (text)
            fprintf (self->out, "%s\n", text);
        free (text);
        json_decref (line);
    }
    json_decref (decoded);
    free (decode_error);
}


//  --------------------------------------------------------------------------
//  Handle one tap message

int
lh_tap_handle (lh_tap_t *self, zmsg_t *msg)
{
    assert (self);
    assert (msg);
    if (self->failed)
        return -1;
    size_t frames = zmsg_size (msg);
    zframe_t *topic_frame = zmsg_first (msg);
    zframe_t *header_frame = zmsg_next (msg);
    zframe_t *body = zmsg_next (msg);
    lh_header_t header;
    if (frames < 2 || frames > 3 || zframe_size (topic_frame) > LH_LHREC_TOPIC_MAX
    ||  lh_header_decode (&header, zframe_data (header_frame), zframe_size (header_frame))) {
        if (self->skipped++ == 0)
            fprintf (stderr, "%s: a tap message that is not [topic] [header] [body] was "
                     "skipped (more are only counted)\n", self->tool);
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
    uint64_t rseq = 0;
    bool probe = false;                 //  a health probe or its reply
    if (header.t == LH_T_REQ) {
        snprintf (svc, sizeof svc, "%s", header.svc);
        snprintf (op, sizeof op, "%s", header.op);
        probe = s_is_probe (&header);
        s_pending_add (self, topic, &header, probe);
    }
    else
    if (header.t == LH_T_PUB) {
        snprintf (svc, sizeof svc, "evt");
        snprintf (op, sizeof op, "%s", header.topic);
    }
    else {
        rseq = lh_tap_rseq (zframe_data (header_frame), zframe_size (header_frame));
        s_pending_t request;
        if ((header.has & LH_H_CID) && s_pending_find (self, topic, &header, rseq, &request)) {
            snprintf (svc, sizeof svc, "%s", request.svc);
            snprintf (op, sizeof op, "%s", request.op);
            probe = request.probe;
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
    if (probe && !self->all) {
        self->hidden++;
        return 0;
    }
    if ((self->service && !streq (self->service, svc))
    ||  (self->op && !streq (self->op, op))
    ||  (self->trace && !((header.has & LH_H_TR) && streq (header.tr, self->trace)))
    ||  !s_status_matches (self, &header))
        return 0;

    self->shown++;
    if (self->recording
    &&  lh_lhrec_write (self->recording, (uint64_t) zclock_time () * 1000, topic,
                        zframe_data (header_frame), zframe_size (header_frame),
                        body? zframe_data (body): NULL, body? zframe_size (body): 0)) {
        fprintf (stderr, "%s: cannot write %s: %s\n", self->tool, self->record_path,
                 strerror (errno));
        self->failed = true;
        return -1;
    }
    if (!self->quiet)
        s_show (self, svc, op, &header, rseq, body, has_latency, latency);
    return 0;
}


//  --------------------------------------------------------------------------
//  Messages shown

uint64_t
lh_tap_shown (lh_tap_t *self)
{
    assert (self);
    return self->shown;
}


//  --------------------------------------------------------------------------
//  Did the recording fail

bool
lh_tap_failed (lh_tap_t *self)
{
    assert (self);
    return self->failed;
}


//  --------------------------------------------------------------------------
//  One line of counts (caller frees)

char *
lh_tap_summary (lh_tap_t *self)
{
    assert (self);
    char *text = zsys_sprintf ("%" PRIu64 " received, %" PRIu64 " shown, %" PRIu64
                               " gap(s), %" PRIu64 " missed", self->received,
                               self->shown, self->gaps, self->missed);
    if (text && self->skipped) {
        char *longer = zsys_sprintf ("%s, %" PRIu64 " malformed skipped", text, self->skipped);
        free (text);
        text = longer;
    }
    if (text && self->hidden) {
        char *longer = zsys_sprintf ("%s, %" PRIu64 " health probe message(s) hidden "
                                     "(--all shows them)", text, self->hidden);
        free (text);
        text = longer;
    }
    assert (text);
    return text;
}


//  --------------------------------------------------------------------------
//  The "rseq" of an encoded header, or 0

uint64_t
lh_tap_rseq (const void *header, size_t size)
{
    lh_reader_t reader;
    lh_reader_init (&reader, header, size);
    uint32_t count;
    if (lh_reader_map (&reader, &count) || count > LH_HEADER_KEYS_MAX)
        return 0;
    while (count--) {
        const char *key;
        uint32_t key_size;
        if (lh_reader_str (&reader, &key, &key_size))
            return 0;
        if (key_size == strlen (LH_TAP_RSEQ) && memcmp (key, LH_TAP_RSEQ, key_size) == 0) {
            uint64_t rseq;
            return lh_reader_uint (&reader, &rseq) == 0? rseq: 0;
        }
        if (lh_reader_skip (&reader, 8))
            return 0;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Actor: handle every message waiting on sub; returns when none is left

static void
    s_actor_write (lh_tap_t *self, zsock_t *pipe);
static zsock_t *
    s_actor_connect (zsock_t *pipe, zmsg_t *request);

static void
s_actor_drain (lh_tap_t *self, zsock_t *sub, zsock_t *pipe)
{
    while (!self->terminating && (zsock_events (sub) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (sub);  //  whole message there: no wait
        if (!msg)
            break;
        lh_tap_handle (self, msg);      //  a failed recording was said once
        zmsg_destroy (&msg);
        s_actor_write (self, pipe);
    }
}


//  --------------------------------------------------------------------------
//  Actor: write what the memory stream holds to the real output, waiting
//  for room with poll, and watching the pipe meanwhile. A command that
//  comes is kept for the actor's loop; $TERM ends the writing (what is
//  left is dropped), so that the actor stops even when nobody reads its
//  output (lakehouse up --tap | a reader that stalled).

static void
s_actor_write (lh_tap_t *self, zsock_t *pipe)
{
    if (!self->sink)
        return;
    fflush (self->out);                 //  sets held and held_size
    if (self->sink_closed) {
        fseek (self->out, 0, SEEK_SET);
        return;
    }
    int fd = fileno (self->sink);
    size_t offset = 0;
    while (offset < self->held_size && !self->terminating) {
        //  The pipe's descriptor only signals a command that comes after
        //  the pipe was last asked for its events: ask before each wait
        bool command = !self->command && (zsock_events (pipe) & ZMQ_POLLIN);
        struct pollfd items [2] = {
            { fd, POLLOUT, 0 },
            { zsock_fd (pipe), POLLIN, 0 }
        };
        if (!command) {
            int rc = poll (items, self->command? 1: 2, self->write_wait);
            if (rc == 0 || (rc == -1 && errno != EINTR))
                break;                  //  no room in time: drop the rest
            command = !self->command && (items [1].revents & POLLIN)
                   && (zsock_events (pipe) & ZMQ_POLLIN);
        }
        if (command) {
            self->command = zmsg_recv (pipe);
            char *name = self->command? zmsg_popstr (self->command): NULL;
            if (!name || streq (name, "$TERM"))
                self->terminating = true;
            else
                zmsg_pushstr (self->command, name);
            zstr_free (&name);
            continue;
        }
        if (items [0].revents & (POLLOUT | POLLERR | POLLHUP)) {
            size_t size = self->held_size - offset;
            ssize_t rc = write (fd, self->held + offset, size < S_WRITE_CHUNK? size: S_WRITE_CHUNK);
            if (rc > 0)
                offset += (size_t) rc;
            else
            if (rc < 0 && errno != EINTR && errno != EAGAIN) {
                //  The reader went away (EPIPE): no more lines, once said
                lh_warn (self->tool, NULL, "the tap's output was closed (%s): no more tap "
                         "lines%s", strerror (errno), self->recording? "; the recording goes on": "");
                self->sink_closed = true;
                break;
            }
        }
    }
    if (!self->sink_closed)
        self->unwritten += self->held_size - offset;
    fseek (self->out, 0, SEEK_SET);     //  start the stream again
}


//  --------------------------------------------------------------------------
//  Actor: one command from the pipe. Returns true for $TERM.

static bool
s_actor_command (lh_tap_t *self, zsock_t *pipe, zmsg_t *request, zsock_t **sub_p,
                 zpoller_t *poller)
{
    char *command = request? zmsg_popstr (request): NULL;
    bool terminated = false;
    if (!command || streq (command, "$TERM"))
        terminated = true;
    else
    if (streq (command, "CONNECT")) {
        if (*sub_p)
            zsock_send (pipe, "ss", "-1", "already connected");
        else
        if ((*sub_p = s_actor_connect (pipe, request)))
            zpoller_add (poller, *sub_p);
    }
    else
    if (streq (command, "SYNC")) {
        if (*sub_p)
            s_actor_drain (self, *sub_p, pipe);
        char received [24];
        snprintf (received, sizeof received, "%" PRIu64, self->received);
        zsock_send (pipe, "ss", "0", received);
    }
    else {
        lh_error ("tap", NULL, "unknown pipe command '%s'", command);
        zsock_send (pipe, "ss", "-1", "unknown command");
    }
    zstr_free (&command);
    return terminated;
}


//  --------------------------------------------------------------------------
//  Actor: CONNECT endpoint. Returns the SUB socket or NULL; answers the
//  pipe either way.

static zsock_t *
s_actor_connect (zsock_t *pipe, zmsg_t *request)
{
    char *endpoint = zmsg_popstr (request);
    if (!endpoint || !*endpoint) {
        zsock_send (pipe, "ss", "-1", "CONNECT needs an endpoint");
        zstr_free (&endpoint);
        return NULL;
    }
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, LH_TAP_HWM);
    zsock_set_linger (sub, 0);
    zsock_set_subscribe (sub, "");
    if (zsock_connect (sub, "%s", endpoint) == -1) {
        char *why = zsys_sprintf ("cannot connect to the tap at %s: %s", endpoint,
                                  zmq_strerror (zmq_errno ()));
        zsock_send (pipe, "ss", "-1", why);
        free (why);
        zsock_destroy (&sub);
    }
    else
        zsock_send (pipe, "ss", "0", endpoint);
    zstr_free (&endpoint);
    return sub;
}


//  --------------------------------------------------------------------------
//  The reader as an actor

void
lh_tap_actor (zsock_t *pipe, void *args)
{
    lh_tap_t *self = (lh_tap_t *) args;
    assert (self);
    zsock_t *sub = NULL;
    zpoller_t *poller = zpoller_new (pipe, NULL);
    assert (poller);
    pthread_setname_np (pthread_self (), "tap");
    //  Output that can block (anything but a regular file) goes through a
    //  memory stream, written out by s_actor_write
    struct stat status;
    if (fstat (fileno (self->out), &status) == 0 && !S_ISREG (status.st_mode)) {
        fflush (self->out);
        self->sink = self->out;
        self->out = open_memstream (&self->held, &self->held_size);
        assert (self->out);
        self->write_wait = -1;
    }
    zsock_signal (pipe, 0);
    bool terminated = false;
    while (!terminated && !self->terminating) {
        if (self->command) {
            //  It came while output was being written
            zmsg_t *request = self->command;
            self->command = NULL;
            terminated = s_actor_command (self, pipe, request, &sub, poller);
            zmsg_destroy (&request);
            continue;
        }
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            zmsg_t *request = zmsg_recv (pipe);
            terminated = s_actor_command (self, pipe, request, &sub, poller);
            zmsg_destroy (&request);
        }
        else
        if (which && which == sub)
            s_actor_drain (self, sub, pipe);
        else
        if (zpoller_terminated (poller))
            break;
    }
    //  What came before $TERM is shown if the output takes it promptly
    self->write_wait = S_FINAL_WAIT_MS;
    if (sub && !self->terminating)
        s_actor_drain (self, sub, pipe);
    zmsg_destroy (&self->command);
    if (self->unwritten)
        lh_warn (self->tool, NULL, "%zu bytes of tap output were not written: "
                 "nobody read them before the end", self->unwritten);
    if (self->sink) {
        fclose (self->out);
        free (self->held);
        self->held = NULL;
        self->out = self->sink;
        self->sink = NULL;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
}


//  --------------------------------------------------------------------------
//  Selftest helper: a tap message [topic] [header + rseq?] [body?]

static zmsg_t *
s_test_message (const char *topic, lh_header_t *header, uint64_t rseq, const char *body)
{
    uint8_t buffer [LH_HEADER_MAX + 16];
    int size = lh_header_encode (header, buffer, LH_HEADER_MAX);
    assert (size > 1 && buffer [0] > 0x80 && buffer [0] < 0x8f);
    if (rseq) {
        buffer [0]++;
        buffer [size++] = 0xa4;
        memcpy (buffer + size, LH_TAP_RSEQ, 4);
        size += 4;
        buffer [size++] = 0xcd;         //  uint16
        buffer [size++] = (uint8_t) (rseq >> 8);
        buffer [size++] = (uint8_t) rseq;
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_addmem (msg, buffer, (size_t) size);
    if (body) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_str (pack, "s", body);
        size_t body_size;
        const void *data = lh_pack_data (pack, &body_size);
        zmsg_addmem (msg, data, body_size);
        lh_pack_destroy (&pack);
    }
    return msg;
}


//  --------------------------------------------------------------------------
//  A header for the selftest: type, bseq, brx, src

static lh_header_t *
s_test_header (lh_header_t *header, lh_type_t type, uint64_t bseq, uint64_t brx)
{
    lh_header_init (header, type);
    header->has |= LH_H_BSEQ | LH_H_BRX;
    header->bseq = bseq;
    header->brx = brx;
    lh_header_set_str (header, LH_H_SRC, type == LH_T_REQ? "client": "worker");
    return header;
}


//  --------------------------------------------------------------------------
//  A REQ echo.OP id with bseq, brx and optional trace id

static zmsg_t *
s_test_request (const char *op, uint64_t id, uint64_t bseq, uint64_t brx, const char *tr)
{
    lh_header_t header;
    s_test_header (&header, LH_T_REQ, bseq, brx);
    header.has |= LH_H_ID;
    header.id = id;
    lh_header_set_str (&header, LH_H_SVC, "echo");
    lh_header_set_str (&header, LH_H_OP, op);
    if (tr)
        lh_header_set_str (&header, LH_H_TR, tr);
    char topic [64];
    snprintf (topic, sizeof topic, "echo.%s", op);
    return s_test_message (topic, &header, 0, "hello");
}


//  --------------------------------------------------------------------------
//  A REP/PART to echo.OP cid with status, rseq (0: none), optional trace id

static zmsg_t *
s_test_reply (lh_type_t type, const char *op, uint64_t cid, uint32_t status,
              uint64_t bseq, uint64_t brx, uint64_t rseq, const char *tr)
{
    lh_header_t header;
    s_test_header (&header, type, bseq, brx);
    header.has |= LH_H_CID | LH_H_ST;
    header.cid = cid;
    header.st = status;
    if (tr)
        lh_header_set_str (&header, LH_H_TR, tr);
    char topic [64];
    snprintf (topic, sizeof topic, "echo.%s", op);
    return s_test_message (topic, &header, rseq, NULL);
}


//  --------------------------------------------------------------------------
//  Handle a message and destroy it

static int
s_test_handle (lh_tap_t *tap, zmsg_t *msg)
{
    int rc = lh_tap_handle (tap, msg);
    zmsg_destroy (&msg);
    return rc;
}


//  --------------------------------------------------------------------------
//  Selftest helper: a line handler that keeps what it was told

typedef struct {
    size_t count;                       //  lines
    size_t warnings;                    //  of them warnings
    char last_svc [LH_NAME_MAX + 1];    //  the last message's svc
    char last_op [LH_TOPIC_MAX + 1];    //  its op
    char last_tr [LH_TRACE_SIZE + 1];   //  its trace id
    uint32_t last_st;                   //  its status
    char last_json [512];               //  its line
} s_test_lines_t;

static void
s_test_line (void *arg, const lh_tap_line_t *line)
{
    s_test_lines_t *lines = (s_test_lines_t *) arg;
    lines->count++;
    assert (line->size == strlen (line->json));
    if (line->warning) {
        lines->warnings++;
        assert (strstr (line->json, "\"warning\":\"bseq_gap\""));
        return;
    }
    snprintf (lines->last_svc, sizeof lines->last_svc, "%s", line->svc);
    snprintf (lines->last_op, sizeof lines->last_op, "%s", line->op);
    snprintf (lines->last_tr, sizeof lines->last_tr, "%s", line->tr);
    lines->last_st = line->st;
    snprintf (lines->last_json, sizeof lines->last_json, "%s", line->json);
}


//  --------------------------------------------------------------------------
//  Selftest

void
lh_tap_test (bool verbose)
{
    printf (" * lh_tap: ");

    //  rseq: found, absent, unreadable
    {
        zmsg_t *msg = s_test_reply (LH_T_REP, "echo", 1, 200, 9, 100, 300, NULL);
        zmsg_first (msg);
        zframe_t *header = zmsg_next (msg);
        assert (lh_tap_rseq (zframe_data (header), zframe_size (header)) == 300);
        zmsg_destroy (&msg);
        msg = s_test_reply (LH_T_REP, "echo", 1, 200, 9, 100, 0, NULL);
        zmsg_first (msg);
        header = zmsg_next (msg);
        assert (lh_tap_rseq (zframe_data (header), zframe_size (header)) == 0);
        zmsg_destroy (&msg);
        const uint8_t junk [] = { 0x81, 0xa4, 'r', 's', 'e', 'q', 0xa1, 'x' };
        assert (lh_tap_rseq (junk, sizeof junk) == 0);
        assert (lh_tap_rseq (junk, 3) == 0);
        assert (lh_tap_rseq (NULL, 0) == 0);
    }

    //  Options: values, '=', bad values
    lh_tap_t *tap = lh_tap_new ("test");
    {
        char *argv [] = { "x", "--bodies", "--status=2xx,404", "--trace", "abc",
                          "--op", "echo", "--nope", "--service" };
        int argc = 9;
        char *error = NULL;
        int argn = 1;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == 1 && argn == 1);
        argn = 2;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == 1 && argn == 2);
        assert (tap->statuses == 2 && tap->status [0].low == 200 && tap->status [0].high == 299);
        argn = 3;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == -1 && error);
        zstr_free (&error);
        argn = 5;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == 1 && argn == 6);
        assert (streq (tap->op, "echo"));
        argn = 7;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == 0);
        argn = 8;
        assert (lh_tap_option (tap, argc, argv, &argn, &error) == -1 && error);
        zstr_free (&error);
        char *bad [] = { "x", "--status", "6xx" };
        argn = 1;
        assert (lh_tap_option (tap, 3, bad, &argn, &error) == -1 && error);
        zstr_free (&error);
    }
    lh_tap_destroy (&tap);
    lh_tap_destroy (&tap);

    //  Pairing by rseq: two clients used id 7; the replies come in the
    //  other order and still find their own request (latency tells)
    char *text = NULL;
    size_t text_size = 0;
    FILE *out = open_memstream (&text, &text_size);
    assert (out);
    char path [256];
    snprintf (path, sizeof path, "/tmp/lh_tap_test_%d.lhrec", (int) getpid ());
    tap = lh_tap_new ("test");
    lh_tap_set_output (tap, out);
    char *error = NULL;
    assert (lh_tap_record (tap, path, "testbroker", "inproc://test", &error) == 0);
    assert (s_test_handle (tap, s_test_request ("echo", 7, 1, 1000, NULL)) == 0);
    assert (s_test_handle (tap, s_test_request ("echo", 7, 2, 2000, NULL)) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_PART, "echo", 7, 200, 3, 2100, 2, NULL)) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 7, 200, 4, 2500, 2, NULL)) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 7, 200, 5, 4000, 1, NULL)) == 0);
    //  A reply to a request never seen: svc.op from the topic, no latency
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 7, 200, 6, 4100, 77, NULL)) == 0);
    //  Without rseq (an older broker): by topic, id and trace id
    assert (s_test_handle (tap, s_test_request ("stream", 9, 7, 5000, "aa")) == 0);
    assert (s_test_handle (tap, s_test_request ("stream", 9, 8, 6000, "bb")) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "stream", 9, 500, 9, 6400, 0, "bb")) == 0);
    //  A gap: 10..11 missed
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "stream", 9, 200, 12, 9000, 0, "aa")) == 0);
    //  Not a tap message: skipped
    zmsg_t *junk = zmsg_new ();
    zmsg_addstr (junk, "only a topic");
    assert (s_test_handle (tap, junk) == 0);
    fflush (out);
    if (verbose)
        printf ("\n%s", text);
    assert (strstr (text, "\"bseq\":4,\"kind\":\"REP\",\"src\":\"worker\",\"svc\":\"echo\","
                          "\"op\":\"echo\",\"cid\":7,\"rseq\":2,\"st\":200,\"bytes\":0,"
                          "\"latency_us\":500}"));
    assert (strstr (text, "\"bseq\":5,\"kind\":\"REP\"") && strstr (text, "\"latency_us\":3000}"));
    assert (strstr (text, "\"bseq\":3,\"kind\":\"PART\"") && strstr (text, "\"cid\":7,\"rseq\":2,\"st\":200,\"bytes\":0}"));
    assert (strstr (text, "\"bseq\":6,\"kind\":\"REP\",\"src\":\"worker\",\"svc\":\"echo\","
                          "\"op\":\"echo\",\"cid\":7,\"rseq\":77,\"st\":200,\"bytes\":0}"));
    assert (strstr (text, "\"op\":\"stream\",\"cid\":9,\"tr\":\"bb\",\"st\":500,\"bytes\":0,\"latency_us\":400}"));
    assert (strstr (text, "{\"warning\": \"bseq_gap\", \"after\": 9, \"next\": 12, \"missed\": 2}"));
    assert (strstr (text, "\"cid\":9,\"tr\":\"aa\",\"st\":200,\"bytes\":0,\"latency_us\":4000}"));
    assert (lh_tap_shown (tap) == 10);
    char *summary = lh_tap_summary (tap);
    assert (streq (summary, "10 received, 10 shown, 1 gap(s), 2 missed, 1 malformed skipped"));
    zstr_free (&summary);
    lh_tap_destroy (&tap);

    //  The recording holds all ten, rseq readable
    lh_lhrec_t *rec = lh_lhrec_open (path, 0, &error);
    assert (rec);
    assert (streq (lh_lhrec_info (rec)->tool, "test"));
    assert (streq (lh_lhrec_info (rec)->tap, "inproc://test"));
    lh_lhrec_record_t record;
    size_t records = 0;
    while (lh_lhrec_next (rec, &record) == 1) {
        records++;
        if (record.header.bseq == 4)
            assert (record.rseq == 2);
        if (record.header.t == LH_T_REQ)
            assert (record.rseq == 0 && record.body);
    }
    assert (records == 10);
    lh_lhrec_destroy (&rec);

    //  Filters: --status 5xx shows the one 500, and --pretty prints a table
    rewind (out);
    tap = lh_tap_new ("test");
    lh_tap_set_output (tap, out);
    char *argv [] = { "x", "--status", "5xx", "--pretty", "--bodies" };
    for (int argn = 1; argn < 5; argn++)
        assert (lh_tap_option (tap, 5, argv, &argn, &error) == 1);
    assert (s_test_handle (tap, s_test_request ("echo", 1, 1, 1000, NULL)) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 1, 503, 2, 1200, 1, NULL)) == 0);
    assert (s_test_handle (tap, s_test_request ("echo", 2, 3, 1000, NULL)) == 0);
    assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 2, 200, 4, 1200, 3, NULL)) == 0);
    assert (lh_tap_shown (tap) == 1);
    fputc (0, out);
    fflush (out);
    assert (strstr (text, "time") && strstr (text, "echo.echo") && strstr (text, "0.200 ms"));
    lh_tap_destroy (&tap);

    //  The gateway's health probes (broker.ping, broker.services from its
    //  health client) and their replies are hidden, unless --all
    for (int all = 0; all < 2; all++) {
        tap = lh_tap_new ("test");
        lh_tap_set_output (tap, out);
        if (all) {
            char *flag [] = { "x", "--all" };
            int argn = 1;
            assert (lh_tap_option (tap, 2, flag, &argn, &error) == 1);
        }
        const char *probes [][2] = { { "gateway-health", "ping" }, { "gateway", "services" },
                                     { "admin", "ping" }, { "gateway-health", "stats" } };
        for (uint64_t index = 0; index < 4; index++) {
            lh_header_t header;
            s_test_header (&header, LH_T_REQ, 10 + index * 2, 1000);
            header.has |= LH_H_ID;
            header.id = index + 1;
            lh_header_set_str (&header, LH_H_SRC, probes [index][0]);
            lh_header_set_str (&header, LH_H_SVC, "broker");
            lh_header_set_str (&header, LH_H_OP, probes [index][1]);
            char topic [64];
            snprintf (topic, sizeof topic, "broker.%s", probes [index][1]);
            assert (s_test_handle (tap, s_test_message (topic, &header, 0, NULL)) == 0);
            s_test_header (&header, LH_T_REP, 11 + index * 2, 1100);
            header.has |= LH_H_CID | LH_H_ST;
            header.cid = index + 1;
            header.st = 200;
            assert (s_test_handle (tap, s_test_message (topic, &header, 10 + index * 2,
                                                        NULL)) == 0);
        }
        //  Shown: admin's ping and the stats call (each REQ + REP); with
        //  --all the probes too
        assert (lh_tap_shown (tap) == (all? 8u: 4u));
        char *summary = lh_tap_summary (tap);
        assert (streq (summary, all? "8 received, 8 shown, 0 gap(s), 0 missed"
                              : "8 received, 4 shown, 0 gap(s), 0 missed, 4 health probe "
                                "message(s) hidden (--all shows them)"));
        free (summary);
        lh_tap_destroy (&tap);
    }
    fclose (out);
    free (text);

    //  The actor on an in-process XPUB: subscribes, records, and on $TERM
    //  handles what had arrived
    {
        zsock_t *xpub = zsock_new (ZMQ_XPUB);
        assert (xpub);
        assert (zsock_bind (xpub, "inproc://lh-tap-test") == 0);
        tap = lh_tap_new ("test");
        lh_tap_set_quiet (tap, true);
        assert (lh_tap_record (tap, path, "testbroker", "inproc://lh-tap-test", &error) == 0);
        zactor_t *reader = zactor_new (lh_tap_actor, tap);
        assert (reader);
        char *status = NULL, *detail = NULL;
        zsock_send (reader, "ss", "CONNECT", "inproc://lh-tap-test");
        assert (zsock_recv (reader, "ss", &status, &detail) == 0);
        assert (streq (status, "0") && streq (detail, "inproc://lh-tap-test"));
        zstr_free (&status);
        zstr_free (&detail);
        zsock_send (reader, "ss", "CONNECT", "inproc://lh-tap-test");
        assert (zsock_recv (reader, "ss", &status, &detail) == 0);
        assert (streq (status, "-1"));
        zstr_free (&status);
        zstr_free (&detail);
        //  Its subscription reaches the XPUB: then nothing sent is lost
        zsock_set_rcvtimeo (xpub, 5000);
        zframe_t *subscription = zframe_recv (xpub);
        assert (subscription && zframe_size (subscription) == 1
                && zframe_data (subscription) [0] == 1);
        zframe_destroy (&subscription);
        for (uint64_t index = 1; index <= 50; index++) {
            zmsg_t *msg = s_test_request ("echo", index, 2 * index - 1, 1000, NULL);
            assert (zmsg_send (&msg, xpub) == 0);
            msg = s_test_reply (LH_T_REP, "echo", index, 200, 2 * index, 1500, 2 * index - 1, NULL);
            assert (zmsg_send (&msg, xpub) == 0);
        }
        zstr_send (reader, "SYNC");
        assert (zsock_recv (reader, "ss", &status, &detail) == 0);
        assert (streq (status, "0") && atoi (detail) > 0 && atoi (detail) <= 100);
        zstr_free (&status);
        zstr_free (&detail);
        zactor_destroy (&reader);
        assert (lh_tap_shown (tap) == 100 && !lh_tap_failed (tap));
        lh_tap_destroy (&tap);
        zsock_destroy (&xpub);
        rec = lh_lhrec_open (path, 0, &error);
        assert (rec);
        records = 0;
        while (lh_lhrec_next (rec, &record) == 1)
            records++;
        assert (records == 100);
        lh_lhrec_destroy (&rec);
    }

    //  A line handler takes the lines (messages and gap warnings) as JSON,
    //  with svc, op, tr and st beside them, whatever --pretty says
    {
        tap = lh_tap_new ("test");
        char *argv [] = { "x", "--pretty" };
        int argn = 1;
        assert (lh_tap_option (tap, 2, argv, &argn, &error) == 1);
        s_test_lines_t lines = { 0 };
        lh_tap_set_handler (tap, s_test_line, &lines);
        assert (s_test_handle (tap, s_test_request ("echo", 5, 1, 1000, "cc")) == 0);
        assert (s_test_handle (tap, s_test_reply (LH_T_REP, "echo", 5, 404, 4, 1300, 1, "cc")) == 0);
        assert (lines.count == 3 && lines.warnings == 1);
        assert (streq (lines.last_svc, "echo") && streq (lines.last_op, "echo"));
        assert (streq (lines.last_tr, "cc") && lines.last_st == 404);
        assert (strstr (lines.last_json, "\"latency_us\":300}") && lines.last_json [0] == '{');
        lh_tap_destroy (&tap);
    }

    //  A recording that cannot be created
    tap = lh_tap_new ("test");
    assert (lh_tap_record (tap, "/nonexistent-dir/x.lhrec", "b", "e", &error) == -1 && error);
    zstr_free (&error);
    lh_tap_destroy (&tap);

    unlink (path);
    printf ("OK\n");
}
