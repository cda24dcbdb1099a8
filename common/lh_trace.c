/*  =========================================================================
    lh_trace - OpenTelemetry spans, exported as OTLP/HTTP JSON

    The exporter is a process-wide singleton: a ring of lh_span_t under a
    mutex, and one thread that drains it. lh_span_end copies the span into
    the ring (a full ring drops it: counted) and wakes the thread only when
    a batch is full; otherwise the thread wakes every flush_ms. The thread
    formats a batch as one OTLP ExportTraceServiceRequest in JSON — one
    resourceSpans per service.name, one scopeSpans each — and POSTs it with
    libcurl (its own easy handle, reused). A failed POST (no connection,
    timeout, non-2xx) loses its spans: counted, logged at most every 10 s,
    never retried, so a collector that is down costs one failed POST per
    batch and nothing else.

    Clocks: spans carry wall-clock ns (CLOCK_REALTIME), the time OTLP wants.
    =========================================================================
*/

#include "lh_trace.h"
#include "lh_log.h"
#include "lh_client.h"
#include <curl/curl.h>
#include <sodium.h>
#include <pthread.h>
#include <sys/stat.h>

#define S_LOG_EVERY_MS      10000       //  most one warning per this, per kind
#define S_HEADERS_MAX       (64 * 1024) //  largest headers file
#define S_THREAD_NAME       "lh-otlp"   //  the exporter thread, in top -H
#define S_CONNECT_MAX_MS    2000        //  connect timeout cap per export

bool lh_trace_active = false;

//  The exporter
typedef struct {
    pthread_mutex_t lock;               //  guards everything below but the config
    pthread_cond_t wake;                //  a batch is full, or stop
    pthread_t thread;                   //  the exporter thread
    lh_span_t *ring;                    //  queue_max spans
    size_t ring_max;                    //  its capacity
    size_t head;                        //  oldest span
    size_t count;                       //  spans held
    bool stopping;                      //  lh_trace_stop was called
    lh_trace_stats_t stats;             //  counters
    //  Set at start, read-only after
    size_t batch_size;                  //  trace/batch_size
    int64_t flush_ms;                   //  trace/flush_ms
    long timeout_ms;                    //  trace/timeout_ms
    char *url;                          //  ENDPOINT/v1/traces
    struct curl_slist *headers;         //  Content-Type + the headers file's
    char host [256];                    //  host.name
    char instance [300];                //  service.instance.id: host:pid
} s_tracer_t;

static s_tracer_t *s_tracer = NULL;     //  the running exporter, or NULL

//  A growing text buffer (the exporter's JSON)
typedef struct {
    char *data;                         //  text, not NUL-terminated
    size_t size;                        //  bytes used
    size_t capacity;                    //  bytes allocated
} s_text_t;


//  --------------------------------------------------------------------------
//  Wall clock, ns since the epoch

uint64_t
lh_trace_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


//  --------------------------------------------------------------------------
//  Write a fresh span id: 16 lowercase hex, never all zero (from
//  lh_trace_random, as trace ids are)

void
lh_span_mint (char *id)
{
    assert (id);
    static const char hex [] = "0123456789abcdef";
    uint64_t value = lh_trace_random () | 1;        //  never all zero
    for (int index = LH_SPAN_SIZE - 1; index >= 0; index--) {
        id [index] = hex [value & 15];
        value >>= 4;
    }
    id [LH_SPAN_SIZE] = 0;
}


//  --------------------------------------------------------------------------
//  Is text exactly size lowercase hex digits, not all zero?

bool
lh_span_id_valid (const char *text, size_t size)
{
    if (!text || strnlen (text, size + 1) != size)
        return false;
    bool nonzero = false;
    for (size_t index = 0; index < size; index++) {
        char c = text [index];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            nonzero = true;
    }
    return nonzero;
}


//  --------------------------------------------------------------------------
//  Copy at most max bytes of text into a field of max + 1, never cutting a
//  UTF-8 character

static void
s_copy (char *field, size_t max, const char *text)
{
    size_t size = text? strlen (text): 0;
    if (size > max) {
        size = max;
        while (size > 0 && ((unsigned char) text [size] & 0xC0) == 0x80)
            size--;
    }
    if (size)
        memcpy (field, text, size);
    field [size] = 0;
}


//  --------------------------------------------------------------------------
//  Start a span now; only marks it inactive when tracing is off

void
lh_span_start (lh_span_t *self, const char *trace, const char *parent,
               const char *service, const char *name, lh_span_kind_t kind)
{
    assert (self);
    self->active = false;
    if (!lh_trace_on () || !lh_span_id_valid (trace, LH_TRACE_SIZE))
        return;
    self->active = true;
    self->kind = (uint8_t) kind;
    self->attr_count = 0;
    self->status = 0;
    self->end_ns = 0;
    memcpy (self->trace, trace, LH_TRACE_SIZE + 1);
    lh_span_mint (self->id);
    if (parent && lh_span_id_valid (parent, LH_SPAN_SIZE))
        memcpy (self->parent, parent, LH_SPAN_SIZE + 1);
    else
        self->parent [0] = 0;
    s_copy (self->service, LH_NAME_MAX, service);
    s_copy (self->name, LH_SPAN_NAME_MAX, name);
    self->start_ns = lh_trace_now_ns ();
}


//  --------------------------------------------------------------------------
//  Add an attribute (ignored when inactive or full)

void
lh_span_attr_str (lh_span_t *self, const char *key, const char *value)
{
    assert (self);
    if (!self->active || self->attr_count >= LH_SPAN_ATTRS_MAX || !key)
        return;
    lh_span_attr_t *attr = &self->attrs [self->attr_count++];
    attr->key = key;
    attr->is_text = true;
    s_copy (attr->text, LH_SPAN_TEXT_MAX, value);
}

void
lh_span_attr_int (lh_span_t *self, const char *key, int64_t value)
{
    assert (self);
    if (!self->active || self->attr_count >= LH_SPAN_ATTRS_MAX || !key)
        return;
    lh_span_attr_t *attr = &self->attrs [self->attr_count++];
    attr->key = key;
    attr->is_text = false;
    attr->number = value;
}


//  --------------------------------------------------------------------------
//  End the span and queue it. Returns 0, or -1 (inactive, or dropped).

int
lh_span_end (lh_span_t *self, uint32_t status)
{
    assert (self);
    if (!self->active)
        return -1;
    self->active = false;
    if (!self->end_ns)
        self->end_ns = lh_trace_now_ns ();
    if (self->end_ns < self->start_ns)
        self->end_ns = self->start_ns;
    self->status = status;
    s_tracer_t *tracer = s_tracer;
    if (!tracer)
        return -1;
    int rc = 0;
    pthread_mutex_lock (&tracer->lock);
    if (tracer->count == tracer->ring_max) {
        tracer->stats.dropped++;
        rc = -1;
    }
    else {
        size_t slot = (tracer->head + tracer->count) % tracer->ring_max;
        //  Only the attributes in use are copied
        memcpy (&tracer->ring [slot], self, offsetof (lh_span_t, attrs)
                + self->attr_count * sizeof (lh_span_attr_t));
        tracer->count++;
        tracer->stats.spans++;
        if (tracer->count == tracer->batch_size)
            pthread_cond_signal (&tracer->wake);
    }
    pthread_mutex_unlock (&tracer->lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Text buffer: append bytes (grows by doubling)

static void
s_put (s_text_t *self, const char *data, size_t size)
{
    if (self->size + size > self->capacity) {
        size_t capacity = self->capacity? self->capacity: 65536;
        while (capacity < self->size + size)
            capacity *= 2;
        char *grown = (char *) realloc (self->data, capacity);
        assert (grown);
        self->data = grown;
        self->capacity = capacity;
    }
    memcpy (self->data + self->size, data, size);
    self->size += size;
}

static void
s_puts (s_text_t *self, const char *text)
{
    s_put (self, text, strlen (text));
}

static void
s_put_u64 (s_text_t *self, uint64_t value)
{
    char digits [24];
    int size = snprintf (digits, sizeof (digits), "%" PRIu64, value);
    s_put (self, digits, (size_t) size);
}


//  --------------------------------------------------------------------------
//  Append text as a JSON string: quotes, backslashes and control
//  characters escaped; bytes that are not UTF-8 become U+FFFD

static void
s_put_json (s_text_t *self, const char *text)
{
    static const char hex [] = "0123456789abcdef";
    s_put (self, "\"", 1);
    const unsigned char *scan = (const unsigned char *) text;
    while (*scan) {
        unsigned char c = *scan;
        if (c == '"' || c == '\\') {
            char escaped [2] = { '\\', (char) c };
            s_put (self, escaped, 2);
            scan++;
        }
        else
        if (c < 0x20 || c == 0x7f) {
            char escaped [6] = { '\\', 'u', '0', '0', hex [c >> 4], hex [c & 15] };
            s_put (self, escaped, 6);
            scan++;
        }
        else
        if (c < 0x80) {
            s_put (self, (const char *) scan, 1);
            scan++;
        }
        else {
            //  A whole, shortest-form UTF-8 sequence passes as it is
            size_t length = c >= 0xF0 && c <= 0xF4? 4: c >= 0xE0? 3: c >= 0xC2 && c < 0xE0? 2: 0;
            if (c >= 0xF5)
                length = 0;
            size_t index = 1;
            while (length && index < length && (scan [index] & 0xC0) == 0x80)
                index++;
            bool whole = length && index == length
                && !(c == 0xE0 && scan [1] < 0xA0) && !(c == 0xED && scan [1] > 0x9F)
                && !(c == 0xF0 && scan [1] < 0x90) && !(c == 0xF4 && scan [1] > 0x8F);
            if (whole) {
                s_put (self, (const char *) scan, length);
                scan += length;
            }
            else {
                s_put (self, "\xEF\xBF\xBD", 3);
                scan++;
            }
        }
    }
    s_put (self, "\"", 1);
}


//  --------------------------------------------------------------------------
//  Append one attribute {"key": K, "value": {"stringValue"|"intValue": V}}

static void
s_put_attr (s_text_t *self, const char *key, const char *text, int64_t number)
{
    s_puts (self, "{\"key\":");
    s_put_json (self, key);
    if (text) {
        s_puts (self, ",\"value\":{\"stringValue\":");
        s_put_json (self, text);
    }
    else {
        //  proto3 JSON: int64 as a decimal string
        char digits [24];
        snprintf (digits, sizeof (digits), "\"%" PRId64 "\"", number);
        s_puts (self, ",\"value\":{\"intValue\":");
        s_puts (self, digits);
    }
    s_puts (self, "}}");
}


//  --------------------------------------------------------------------------
//  Append one span as an OTLP JSON Span

static void
s_put_span (s_text_t *self, const lh_span_t *span)
{
    s_puts (self, "{\"traceId\":\"");
    s_puts (self, span->trace);
    s_puts (self, "\",\"spanId\":\"");
    s_puts (self, span->id);
    s_puts (self, "\"");
    if (*span->parent) {
        s_puts (self, ",\"parentSpanId\":\"");
        s_puts (self, span->parent);
        s_puts (self, "\"");
    }
    s_puts (self, ",\"name\":");
    s_put_json (self, span->name);
    s_puts (self, ",\"kind\":");
    s_put_u64 (self, span->kind);
    s_puts (self, ",\"startTimeUnixNano\":\"");
    s_put_u64 (self, span->start_ns);
    s_puts (self, "\",\"endTimeUnixNano\":\"");
    s_put_u64 (self, span->end_ns);
    s_puts (self, "\",\"attributes\":[");
    for (size_t index = 0; index < span->attr_count; index++) {
        const lh_span_attr_t *attr = &span->attrs [index];
        if (index)
            s_puts (self, ",");
        s_put_attr (self, attr->key, attr->is_text? attr->text: NULL, attr->number);
    }
    if (span->status) {
        if (span->attr_count)
            s_puts (self, ",");
        s_put_attr (self, "lh.status", NULL, span->status);
    }
    s_puts (self, "]");
    //  OTLP status: ERROR (2) for a failure, else UNSET (semantic
    //  conventions: a server's 4xx is the caller's fault, a client's is not)
    bool error = span->status >= 500
              || (span->kind == LH_SPAN_CLIENT && span->status >= 400);
    s_puts (self, error? ",\"status\":{\"code\":2}}": ",\"status\":{}}");
}


//  --------------------------------------------------------------------------
//  Order spans by service (qsort over pointers)

static int
s_by_service (const void *a, const void *b)
{
    const lh_span_t *left = *(const lh_span_t * const *) a;
    const lh_span_t *right = *(const lh_span_t * const *) b;
    int order = strcmp (left->service, right->service);
    //  Ties keep the batch's order (the spans lie in one array)
    return order? order: (left > right) - (left < right);
}


//  --------------------------------------------------------------------------
//  Format count spans as one ExportTraceServiceRequest into text (reset
//  first): one resourceSpans per service.name

static void
s_batch_json (s_text_t *text, lh_span_t *spans, size_t count,
              const char *host, const char *instance)
{
    text->size = 0;
    const lh_span_t **order = (const lh_span_t **) malloc ((count? count: 1) * sizeof (void *));
    assert (order);
    for (size_t index = 0; index < count; index++)
        order [index] = &spans [index];
    qsort (order, count, sizeof (void *), s_by_service);
    s_puts (text, "{\"resourceSpans\":[");
    for (size_t index = 0; index < count; index++) {
        bool first = index == 0 || strcmp (order [index]->service, order [index - 1]->service);
        if (first) {
            if (index)
                s_puts (text, "]}]},");
            s_puts (text, "{\"resource\":{\"attributes\":[");
            s_put_attr (text, "service.name", order [index]->service, 0);
            s_puts (text, ",");
            s_put_attr (text, "service.namespace", "lakehouse", 0);
            s_puts (text, ",");
            s_put_attr (text, "service.instance.id", instance, 0);
            s_puts (text, ",");
            s_put_attr (text, "host.name", host, 0);
            s_puts (text, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"lakehouse\",\"version\":\"1\"},"
                          "\"spans\":[");
        }
        else
            s_puts (text, ",");
        s_put_span (text, order [index]);
    }
    if (count)
        s_puts (text, "]}]}");
    s_puts (text, "]}");
    free (order);
}


//  --------------------------------------------------------------------------
//  libcurl: keep the first bytes of the collector's answer for the log

typedef struct {
    char text [96];                     //  the answer's start
    size_t size;                        //  bytes kept
} s_answer_t;

static size_t
s_on_answer (char *data, size_t size, size_t count, void *arg)
{
    s_answer_t *answer = (s_answer_t *) arg;
    size_t bytes = size * count;
    size_t room = sizeof (answer->text) - 1 - answer->size;
    size_t take = bytes < room? bytes: room;
    memcpy (answer->text + answer->size, data, take);
    answer->size += take;
    answer->text [answer->size] = 0;
    return bytes;
}


//  --------------------------------------------------------------------------
//  POST one batch. Returns 0 when the collector took it (2xx), else -1
//  with error (size bytes) saying why.

static int
s_post (s_tracer_t *self, CURL *curl, s_text_t *text, char *error, size_t size)
{
    s_answer_t answer = { "", 0 };
    long connect_ms = self->timeout_ms < S_CONNECT_MAX_MS? self->timeout_ms: S_CONNECT_MAX_MS;
    curl_easy_setopt (curl, CURLOPT_URL, self->url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, self->headers);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, text->data);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) text->size);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "lakehouse-otlp/1");
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_answer);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &answer);
    CURLcode code = curl_easy_perform (curl);
    long http = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &http);
    if (code != CURLE_OK) {
        snprintf (error, size, "%s", curl_easy_strerror (code));
        return -1;
    }
    if (http < 200 || http > 299) {
        for (char *scan = answer.text; *scan; scan++)
            if ((unsigned char) *scan < 0x20)
                *scan = ' ';
        snprintf (error, size, "HTTP %ld %s", http, answer.text);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The exporter thread: take a batch when one is full, or every flush_ms,
//  and send it. On stop: one last pass over what is queued.

static void *
s_exporter (void *arg)
{
    s_tracer_t *self = (s_tracer_t *) arg;
    lh_span_t *batch = (lh_span_t *) malloc (self->batch_size * sizeof (lh_span_t));
    assert (batch);
    CURL *curl = curl_easy_init ();
    s_text_t text = { NULL, 0, 0 };
    int64_t warned_export = 0, warned_drop = 0;
    uint64_t dropped_seen = 0;
    bool failing = false;               //  the last export failed

    pthread_mutex_lock (&self->lock);
    while (true) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t) until.tv_nsec + (uint64_t) self->flush_ms * 1000000;
        until.tv_sec += (time_t) (ns / 1000000000);
        until.tv_nsec = (long) (ns % 1000000000);
        while (!self->stopping && self->count < self->batch_size)
            if (pthread_cond_timedwait (&self->wake, &self->lock, &until) == ETIMEDOUT)
                break;
        bool stopping = self->stopping;
        //  Stopping with a collector that fails: what is left is lost
        if (stopping && failing && self->count) {
            self->stats.failed += self->count;
            self->head = (self->head + self->count) % self->ring_max;
            self->count = 0;
        }
        size_t count = 0;
        while (count < self->batch_size && self->count) {
            memcpy (&batch [count++], &self->ring [self->head], sizeof (lh_span_t));
            self->head = (self->head + 1) % self->ring_max;
            self->count--;
        }
        uint64_t dropped = self->stats.dropped;
        pthread_mutex_unlock (&self->lock);

        int64_t now = zclock_mono ();
        if (dropped > dropped_seen && now - warned_drop >= S_LOG_EVERY_MS) {
            lh_warn ("trace", NULL, "span queue full (trace/queue_max %zu): %" PRIu64
                     " spans dropped so far", self->ring_max, dropped);
            dropped_seen = dropped;
            warned_drop = now;
        }
        if (count) {
            char error [160] = "";
            s_batch_json (&text, batch, count, self->host, self->instance);
            int rc = curl? s_post (self, curl, &text, error, sizeof (error)): -1;
            if (!curl)
                snprintf (error, sizeof (error), "libcurl could not be initialised");
            pthread_mutex_lock (&self->lock);
            self->stats.posts++;
            if (rc == 0)
                self->stats.exported += count;
            else {
                self->stats.post_errors++;
                self->stats.failed += count;
                //  Cut to fit (a precision: GCC's truncation check at -O1)
                snprintf (self->stats.last_error, sizeof (self->stats.last_error), "%.*s",
                          (int) sizeof (self->stats.last_error) - 1, error);
            }
            uint64_t failed = self->stats.failed;
            pthread_mutex_unlock (&self->lock);
            failing = rc != 0;
            if (rc && now - warned_export >= S_LOG_EVERY_MS) {
                lh_warn ("trace", NULL, "span export to %s failed: %s (%" PRIu64
                         " spans lost so far)", self->url, error, failed);
                warned_export = now;
            }
        }
        pthread_mutex_lock (&self->lock);
        if (stopping && self->count == 0)
            break;
    }
    pthread_mutex_unlock (&self->lock);
    curl_easy_cleanup (curl);
    free (text.data);
    free (batch);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Add one "Name: value" header after checking it; returns 0, or -1 with
//  *error_p

static int
s_header_add (s_tracer_t *self, const char *name, size_t name_size, const char *value,
              const char *source, char **error_p)
{
    while (name_size && isspace ((unsigned char) name [name_size - 1]))
        name_size--;
    while (isspace ((unsigned char) *value))
        value++;
    size_t value_size = strlen (value);
    while (value_size && isspace ((unsigned char) value [value_size - 1]))
        value_size--;
    bool valid = name_size > 0;
    for (size_t index = 0; valid && index < name_size; index++)
        valid = isalnum ((unsigned char) name [index]) || strchr ("!#$%&'*+-.^_`|~", name [index]);
    for (size_t index = 0; valid && index < value_size; index++)
        valid = (unsigned char) value [index] >= 0x20 && value [index] != 0x7f;
    if (!valid) {
        //  Never the value itself: it is a secret
        *error_p = zsys_sprintf ("%s: a header is not 'Name: value' (a token name, a "
                                 "value without control characters)", source);
        return -1;
    }
    char *line = zsys_sprintf ("%.*s: %.*s", (int) name_size, name, (int) value_size, value);
    self->headers = curl_slist_append (self->headers, line);
    sodium_memzero (line, strlen (line));
    free (line);
    return 0;
}


//  --------------------------------------------------------------------------
//  Read the headers file: 'Name: value' lines, '#' comments; mode 0600

static int
s_headers_file (s_tracer_t *self, const char *path, char **error_p)
{
    FILE *file = fopen (path, "r");
    struct stat info;
    if (!file || fstat (fileno (file), &info) != 0) {
        *error_p = zsys_sprintf ("config trace/otlp_headers_file '%s': %s", path, strerror (errno));
        if (file)
            fclose (file);
        return -1;
    }
    int rc = 0;
    if (!S_ISREG (info.st_mode)) {
        *error_p = zsys_sprintf ("config trace/otlp_headers_file '%s' is not a regular file", path);
        rc = -1;
    }
    else
    if (info.st_mode & 077) {
        *error_p = zsys_sprintf ("config trace/otlp_headers_file '%s' has mode %04o: it holds "
                                 "secrets, so group and others must have no access (chmod 600 %s)",
                                 path, (unsigned) (info.st_mode & 07777), path);
        rc = -1;
    }
    else
    if (info.st_size > S_HEADERS_MAX) {
        *error_p = zsys_sprintf ("config trace/otlp_headers_file '%s' is larger than %d bytes",
                                 path, S_HEADERS_MAX);
        rc = -1;
    }
    char *line = NULL;
    size_t capacity = 0;
    char *source = zsys_sprintf ("config trace/otlp_headers_file '%s'", path);
    while (rc == 0 && getline (&line, &capacity, file) > 0) {
        line [strcspn (line, "\r\n")] = 0;
        const char *start = line;
        while (isspace ((unsigned char) *start))
            start++;
        if (*start == '#' || !*start)
            continue;
        const char *colon = strchr (start, ':');
        if (!colon) {
            *error_p = zsys_sprintf ("%s: a line has no ':' (expected 'Name: value')", source);
            rc = -1;
            break;
        }
        rc = s_header_add (self, start, (size_t) (colon - start), colon + 1, source, error_p);
    }
    if (line) {
        sodium_memzero (line, capacity);
        free (line);
    }
    free (source);
    fclose (file);
    return rc;
}


//  --------------------------------------------------------------------------
//  OTEL_EXPORTER_OTLP_HEADERS: name=value pairs, comma-separated, values
//  percent-encoded (the OpenTelemetry SDKs' variable)

static int
s_headers_env (s_tracer_t *self, const char *text, char **error_p)
{
    char *copy = strdup (text);
    assert (copy);
    int rc = 0;
    char *save = NULL;
    for (char *pair = strtok_r (copy, ",", &save); pair && rc == 0;
               pair = strtok_r (NULL, ",", &save)) {
        while (isspace ((unsigned char) *pair))
            pair++;
        if (!*pair)
            continue;
        char *equals = strchr (pair, '=');
        if (!equals) {
            *error_p = strdup ("OTEL_EXPORTER_OTLP_HEADERS: a pair has no '=' (expected "
                               "name=value,...)");
            rc = -1;
            break;
        }
        //  Percent-decode the value in place
        char *in = equals + 1, *out = equals + 1;
        while (*in) {
            if (in [0] == '%' && isxdigit ((unsigned char) in [1]) && isxdigit ((unsigned char) in [2])) {
                char digits [3] = { in [1], in [2], 0 };
                *out++ = (char) strtol (digits, NULL, 16);
                in += 3;
            }
            else
                *out++ = *in++;
        }
        *out = 0;
        rc = s_header_add (self, pair, (size_t) (equals - pair), equals + 1,
                           "OTEL_EXPORTER_OTLP_HEADERS", error_p);
    }
    sodium_memzero (copy, strlen (text));
    free (copy);
    return rc;
}


//  --------------------------------------------------------------------------
//  Free an exporter that is not running

static void
s_tracer_destroy (s_tracer_t **self_p)
{
    s_tracer_t *self = *self_p;
    if (self) {
        curl_slist_free_all (self->headers);
        free (self->url);
        free (self->ring);
        pthread_mutex_destroy (&self->lock);
        pthread_cond_destroy (&self->wake);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Start this process's exporter from config trace/...; nothing when the
//  endpoint is empty. Returns 0, or -1 with *error_p naming the key.

int
lh_trace_start (lh_config_t *config, char **error_p)
{
    assert (config);
    assert (error_p);
    *error_p = NULL;
    if (s_tracer)
        return 0;                       //  already running
    const char *endpoint = lh_config_str (config, "trace/otlp_endpoint");
    if (!*endpoint)
        return 0;
    if (strncmp (endpoint, "http://", 7) != 0 && strncmp (endpoint, "https://", 8) != 0) {
        *error_p = zsys_sprintf ("config trace/otlp_endpoint '%s': must be an http:// or "
                                 "https:// URL (or empty: tracing off)", endpoint);
        return -1;
    }
    s_tracer_t *self = (s_tracer_t *) zmalloc (sizeof (s_tracer_t));
    assert (self);
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_cond_init (&self->wake, &attr);
    pthread_condattr_destroy (&attr);
    size_t size = strlen (endpoint);
    while (size && endpoint [size - 1] == '/')
        size--;
    bool full = size >= 10 && memcmp (endpoint + size - 10, "/v1/traces", 10) == 0;
    self->url = zsys_sprintf ("%.*s%s", (int) size, endpoint, full? "": "/v1/traces");
    self->batch_size = (size_t) lh_config_int (config, "trace/batch_size");
    self->flush_ms = lh_config_int (config, "trace/flush_ms");
    self->timeout_ms = (long) lh_config_int (config, "trace/timeout_ms");
    self->ring_max = (size_t) lh_config_int (config, "trace/queue_max");
    self->headers = curl_slist_append (NULL, "Content-Type: application/json");
    const char *path = lh_config_str (config, "trace/otlp_headers_file");
    const char *env = getenv ("OTEL_EXPORTER_OTLP_HEADERS");
    if ((*path && s_headers_file (self, path, error_p))
    ||  (!*path && env && *env && s_headers_env (self, env, error_p))) {
        s_tracer_destroy (&self);
        return -1;
    }
    gethostname (self->host, sizeof (self->host) - 1);
    snprintf (self->instance, sizeof (self->instance), "%s:%d",
              *self->host? self->host: "host", (int) getpid ());
    self->ring = (lh_span_t *) malloc (self->ring_max * sizeof (lh_span_t));
    assert (self->ring);
    self->stats.enabled = true;
    self->stats.queue_max = self->ring_max;
    curl_global_init (CURL_GLOBAL_DEFAULT);
    if (pthread_create (&self->thread, NULL, s_exporter, self) != 0) {
        *error_p = zsys_sprintf ("trace: cannot start the exporter thread: %s", strerror (errno));
        s_tracer_destroy (&self);
        return -1;
    }
    pthread_setname_np (self->thread, S_THREAD_NAME);     //  named before start returns
    s_tracer = self;
    __atomic_store_n (&lh_trace_active, true, __ATOMIC_RELEASE);
    lh_info ("trace", NULL, "exporting spans to %s (batch %zu, every %" PRId64 " ms, queue %zu)",
             self->url, self->batch_size, self->flush_ms, self->ring_max);
    return 0;
}


//  --------------------------------------------------------------------------
//  Stop the exporter after one last export of what is queued

void
lh_trace_stop (void)
{
    s_tracer_t *self = s_tracer;
    if (!self)
        return;
    __atomic_store_n (&lh_trace_active, false, __ATOMIC_RELEASE);
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    lh_info ("trace", NULL, "exporter stopped: %" PRIu64 " spans exported, %" PRIu64
             " dropped (queue full), %" PRIu64 " lost in failed exports",
             self->stats.exported, self->stats.dropped, self->stats.failed);
    s_tracer = NULL;
    s_tracer_destroy (&self);
}


//  --------------------------------------------------------------------------
//  The exporter's counters

void
lh_trace_stats (lh_trace_stats_t *stats)
{
    assert (stats);
    memset (stats, 0, sizeof (*stats));
    s_tracer_t *self = s_tracer;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    *stats = self->stats;
    stats->queued = self->count;
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Self test: ids, span making when off and on, the JSON a batch becomes,
//  headers files, and an exporter whose collector is down: requests never
//  wait, the queue drops past its bound, every span is counted

#include <jansson.h>

void
lh_trace_test (bool verbose)
{
    printf (" * lh_trace: ");
    //  Ids
    char id [LH_SPAN_SIZE + 1], other [LH_SPAN_SIZE + 1];
    lh_span_mint (id);
    lh_span_mint (other);
    assert (lh_span_id_valid (id, LH_SPAN_SIZE) && strneq (id, other));
    assert (!lh_span_id_valid ("0000000000000000", LH_SPAN_SIZE));
    assert (!lh_span_id_valid ("00f067aa0ba902B7", LH_SPAN_SIZE));
    assert (!lh_span_id_valid ("00f067aa0ba902b", LH_SPAN_SIZE));
    assert (!lh_span_id_valid ("00f067aa0ba902b77", LH_SPAN_SIZE));
    assert (lh_span_id_valid ("00f067aa0ba902b7", LH_SPAN_SIZE));
    assert (!lh_span_id_valid (NULL, LH_SPAN_SIZE));

    //  Off: a span is inactive, everything on it is a no-op
    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert (!lh_trace_on ());
    lh_span_t span;
    lh_span_start (&span, trace, NULL, "svc", "svc.op", LH_SPAN_SERVER);
    assert (!span.active);
    lh_span_attr_str (&span, "a", "b");
    assert (lh_span_end (&span, 200) == -1);
    lh_trace_stats_t stats;
    lh_trace_stats (&stats);
    assert (!stats.enabled && stats.spans == 0);
    lh_config_t *config = lh_config_load (NULL, NULL);
    char *error = NULL;
    assert (lh_trace_start (config, &error) == 0 && !error);     //  empty endpoint
    assert (!lh_trace_on ());

    //  JSON of a batch: spans of two services, escapes, a root and a child
    lh_span_t spans [3];
    memset (spans, 0, sizeof (spans));
    __atomic_store_n (&lh_trace_active, true, __ATOMIC_RELAXED);     //  make, do not queue
    lh_span_start (&spans [0], trace, NULL, "gateway", "POST /v1/iterate", LH_SPAN_SERVER);
    lh_span_attr_str (&spans [0], "http.route", "/v1/\"iterate\"\n\xff\xc3\xa9");
    lh_span_attr_int (&spans [0], "http.response.status_code", -5);
    lh_span_start (&spans [1], trace, spans [0].id, "validatord", "validatord.iterate",
                   LH_SPAN_SERVER);
    lh_span_start (&spans [2], trace, spans [0].id, "gateway", "x", LH_SPAN_CLIENT);
    for (int index = 0; index < LH_SPAN_ATTRS_MAX + 2; index++)
        lh_span_attr_int (&spans [2], "n", index);
    assert (spans [2].attr_count == LH_SPAN_ATTRS_MAX);
    lh_span_start (&span, "not a trace", NULL, "svc", "op", LH_SPAN_SERVER);
    assert (!span.active);
    __atomic_store_n (&lh_trace_active, false, __ATOMIC_RELAXED);
    for (int index = 0; index < 3; index++) {
        spans [index].end_ns = spans [index].start_ns + 1000;
        spans [index].status = index == 2? 404: 200;
    }
    s_text_t text = { NULL, 0, 0 };
    s_batch_json (&text, spans, 3, "host", "host:1");
    json_error_t parse_error;
    json_t *root = json_loadb (text.data, text.size, 0, &parse_error);
    if (!root || verbose)
        printf ("\n%.*s\n", (int) text.size, text.data);
    assert (root);
    json_t *resources = json_object_get (root, "resourceSpans");
    assert (json_array_size (resources) == 2);        //  gateway, validatord
    json_t *gateway = json_array_get (resources, 0);
    json_t *resource_attrs = json_object_get (json_object_get (gateway, "resource"), "attributes");
    assert (streq (json_string_value (json_object_get (json_object_get (
        json_array_get (resource_attrs, 0), "value"), "stringValue")), "gateway"));
    json_t *list = json_object_get (json_array_get (json_object_get (gateway, "scopeSpans"), 0),
                                    "spans");
    assert (json_array_size (list) == 2);
    json_t *first = json_array_get (list, 0);
    assert (streq (json_string_value (json_object_get (first, "traceId")), trace));
    assert (!json_object_get (first, "parentSpanId"));
    assert (json_integer_value (json_object_get (first, "kind")) == 2);
    json_t *route = json_array_get (json_object_get (first, "attributes"), 0);
    assert (streq (json_string_value (json_object_get (json_object_get (route, "value"),
                   "stringValue")), "/v1/\"iterate\"\n\xEF\xBF\xBD\xc3\xa9"));
    json_t *code = json_array_get (json_object_get (first, "attributes"), 1);
    assert (streq (json_string_value (json_object_get (json_object_get (code, "value"),
                   "intValue")), "-5"));
    char start [32];
    snprintf (start, sizeof (start), "%" PRIu64, spans [0].start_ns);
    assert (streq (json_string_value (json_object_get (first, "startTimeUnixNano")), start));
    json_t *client = json_array_get (list, 1);
    assert (streq (json_string_value (json_object_get (client, "parentSpanId")), spans [0].id));
    assert (json_integer_value (json_object_get (json_object_get (client, "status"), "code")) == 2);
    json_decref (root);
    s_batch_json (&text, spans, 0, "host", "host:1");
    assert (text.size == 20 && memcmp (text.data, "{\"resourceSpans\":[]}", 20) == 0);
    free (text.data);

    //  Bad settings are refused, naming the key
    lh_config_set (config, "trace/otlp_endpoint", "ftp://x");
    assert (lh_trace_start (config, &error) == -1 && strstr (error, "trace/otlp_endpoint"));
    zstr_free (&error);
    char *dir = zsys_sprintf ("/tmp/lh-trace-test-%d", (int) getpid ());
    zsys_dir_create ("%s", dir);
    char *path = zsys_sprintf ("%s/headers", dir);
    FILE *file = fopen (path, "w");
    fprintf (file, "# Langfuse\nAuthorization: Basic c2VjcmV0\n");
    fclose (file);
    chmod (path, 0644);
    lh_config_set (config, "trace/otlp_endpoint", "http://127.0.0.1:1");
    lh_config_set (config, "trace/otlp_headers_file", path);
    assert (lh_trace_start (config, &error) == -1 && strstr (error, "trace/otlp_headers_file"));
    assert (!strstr (error, "c2VjcmV0"));
    zstr_free (&error);
    chmod (path, 0600);
    file = fopen (path, "a");
    fprintf (file, "no colon here\n");
    fclose (file);
    assert (lh_trace_start (config, &error) == -1 && strstr (error, "no ':'"));
    zstr_free (&error);
    file = fopen (path, "w");
    fprintf (file, "Authorization: Basic c2VjcmV0\n");
    fclose (file);

    //  A collector that is down (nothing listens on port 1): ending a span
    //  never waits; past queue_max spans are dropped and counted; every
    //  span is exported, failed or dropped
    lh_config_set (config, "trace/queue_max", "8");
    lh_config_set (config, "trace/batch_size", "4");
    lh_config_set (config, "trace/flush_ms", "10");
    assert (lh_trace_start (config, &error) == 0);
    assert (lh_trace_on ());
    int64_t begin = zclock_usecs ();
    for (int index = 0; index < 1000; index++) {
        lh_span_start (&span, trace, NULL, "svc", "svc.op", LH_SPAN_SERVER);
        lh_span_attr_str (&span, "rpc.method", "op");
        lh_span_end (&span, 200);
    }
    int64_t took = zclock_usecs () - begin;
    lh_trace_stats (&stats);
    assert (stats.enabled && stats.queue_max == 8);
    assert (stats.dropped > 0 && stats.spans + stats.dropped == 1000);
    if (verbose)
        printf ("\n   1000 spans in %" PRId64 " us, %" PRIu64 " dropped\n", took, stats.dropped);
    //  The exporter's failed posts are counted (bounded wait)
    int64_t until = zclock_mono () + 10000;
    while (stats.failed == 0 || stats.queued) {
        assert (zclock_mono () < until);
        zclock_sleep (10);
        lh_trace_stats (&stats);
    }
    assert (stats.post_errors > 0 && stats.exported == 0 && *stats.last_error);
    assert (stats.failed <= stats.spans);
    lh_trace_stop ();
    assert (!lh_trace_on ());
    lh_trace_stats (&stats);
    assert (!stats.enabled);
    zsys_file_delete (path);
    zsys_dir_delete ("%s", dir);
    zstr_free (&path);
    zstr_free (&dir);
    lh_config_destroy (&config);
    printf ("OK\n");
}
