/*  =========================================================================
    lh_trace - OpenTelemetry spans, exported as OTLP/HTTP JSON

    One exporter per process, started by the launcher when config
    trace/otlp_endpoint is set, stopped after every actor has stopped. A
    span is a fixed-size struct on its maker's stack; ending it copies it
    into the exporter's bounded queue (a full queue drops the span and
    counts it, it never waits). The exporter's own thread ("lh-otlp")
    takes up to trace/batch_size spans at a time, every trace/flush_ms or
    as soon as a batch is full, and POSTs them with libcurl to
    ENDPOINT/v1/traces. Nothing of this runs on a request's path but the
    copy into the queue.

    Off (no endpoint): no queue, no thread, and lh_trace_on is false, so
    span makers skip all span work after that one test:

        lh_span_t span;                 //  no initialisation needed
        lh_span_start (&span, trace, parent, "chatd", "chat qwen", LH_SPAN_CLIENT);
        lh_span_attr_str (&span, "gen_ai.request.model", "qwen");
        ...
        lh_span_end (&span, 200);       //  queued; every call a no-op when off

    Ids are W3C: the trace id 32 lowercase hex (the request's `tr`), span
    ids 16. docs/operations.md ("Traces") lists the spans each hop makes.
    =========================================================================
*/

#ifndef LH_TRACE_H_INCLUDED
#define LH_TRACE_H_INCLUDED

#include "lh_proto.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_SPAN_ATTRS_MAX   8           //  attributes one span holds
#define LH_SPAN_TEXT_MAX    63          //  bytes of one text attribute (cut)
#define LH_SPAN_NAME_MAX    95          //  bytes of a span name (cut)

//  Span kinds, as OTLP numbers them
typedef enum {
    LH_SPAN_INTERNAL = 1,
    LH_SPAN_SERVER = 2,
    LH_SPAN_CLIENT = 3
} lh_span_kind_t;

//  One attribute
typedef struct {
    const char *key;                    //  name: a string literal (kept by address)
    bool is_text;                       //  text, else number
    int64_t number;                     //  the value, when a number
    char text [LH_SPAN_TEXT_MAX + 1];   //  the value, when text
} lh_span_attr_t;

//  A span. Fixed size: making one allocates nothing.
typedef struct {
    bool active;                        //  started with tracing on, not yet ended
    uint8_t kind;                       //  lh_span_kind_t
    uint8_t attr_count;                 //  attrs in use
    uint32_t status;                    //  bus/HTTP status at the end, 0 = none
    uint64_t start_ns;                  //  wall clock, ns since the epoch
    uint64_t end_ns;                    //  the same; 0 until ended
    char trace [LH_TRACE_SIZE + 1];     //  trace id
    char id [LH_SPAN_SIZE + 1];         //  this span's id
    char parent [LH_SPAN_SIZE + 1];     //  the parent span's id, "" for a root
    char service [LH_NAME_MAX + 1];     //  OTLP resource service.name
    char name [LH_SPAN_NAME_MAX + 1];   //  span name ("validatord.iterate")
    lh_span_attr_t attrs [LH_SPAN_ATTRS_MAX];   //  attributes
} lh_span_t;

//  The exporter's counters (lh_trace_stats)
typedef struct {
    bool enabled;                       //  an exporter runs
    uint64_t spans;                     //  spans queued since start
    uint64_t dropped;                   //  spans dropped: the queue was full
    uint64_t exported;                  //  spans the collector accepted (2xx)
    uint64_t failed;                    //  spans lost in failed exports
    uint64_t posts;                     //  export requests made
    uint64_t post_errors;               //  of which failed (no answer, non-2xx)
    uint64_t queued;                    //  spans waiting now
    uint64_t queue_max;                 //  trace/queue_max
    char last_error [128];              //  why the last failed export failed, or ""
} lh_trace_stats_t;

//  True while an exporter runs in this process (read on every request:
//  one relaxed load)
extern bool lh_trace_active;
static inline bool
lh_trace_on (void)
{
    return __atomic_load_n (&lh_trace_active, __ATOMIC_RELAXED);
}

//  Start this process's exporter from config trace/...: with an empty
//  trace/otlp_endpoint nothing starts (0). Returns -1 with *error_p (the
//  caller frees) naming the key when the settings are wrong (endpoint
//  not http(s), headers file unreadable or not mode 0600).
int
    lh_trace_start (lh_config_t *config, char **error_p);

//  Stop the exporter: export what is queued (one try), end the thread,
//  free the queue. Only once no span maker runs (every actor stopped).
void
    lh_trace_stop (void);

//  The exporter's counters (all zero, enabled false, when none runs)
void
    lh_trace_stats (lh_trace_stats_t *stats);

//  Wall clock, ns since the epoch
uint64_t
    lh_trace_now_ns (void);

//  Write a fresh random span id: 16 lowercase hex, never all zero, NUL-
//  terminated (id holds LH_SPAN_SIZE + 1 bytes)
void
    lh_span_mint (char *id);

//  Is text a valid W3C id of size lowercase hex digits, not all zero?
bool
    lh_span_id_valid (const char *text, size_t size);

//  Start a span now with a fresh id. parent NULL or "" makes a root. With
//  tracing off only span->active is set (false). trace must be 32 hex.
void
    lh_span_start (lh_span_t *self, const char *trace, const char *parent,
                   const char *service, const char *name, lh_span_kind_t kind);

//  Add an attribute (ignored when inactive or full; text is cut)
void
    lh_span_attr_str (lh_span_t *self, const char *key, const char *value);
void
    lh_span_attr_int (lh_span_t *self, const char *key, int64_t value);

//  End the span now (unless end_ns is set already) with a status (>= 500,
//  or >= 400 on a client span, marks it an error) and queue it for export.
//  Returns 0, or -1 when it was inactive or the queue was full (dropped
//  and counted).
int
    lh_span_end (lh_span_t *self, uint32_t status);

//  Self test of this class
void
    lh_trace_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
