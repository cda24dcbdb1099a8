/*  =========================================================================
    lh_evring - observerd's events: a bounded ring in memory and a JSONL
    log on disk

    Every event appended gets the next sequence number (seq) and goes into
    the ring; when the ring holds ring_max events, or ring_bytes bytes,
    the oldest are evicted: an append is never refused. The same event is
    queued as one JSON line for the log, and a writer thread appends the
    queued lines to DIR/events.jsonl every flush_ms (with an fdatasync when
    asked), rotating the file past log_max_bytes (events.jsonl.1 is the
    newest rotated file, events.jsonl.LOG_FILES the oldest kept). A write
    that fails is logged and counted, never fatal: the ring goes on.

        lh_evring_opts_t opts = { .ring_max = 1000, .dir = "var/observerd" };
        lh_evring_t *ring = lh_evring_new (&opts);
        lh_evring_append (ring, bseq, brx_us, "catalog.changed", "catalogd-0",
                          body, size, NULL);
        lh_evquery_t query = { .limit = 100 };
        lh_pack_t *pack = lh_pack_new ();
        lh_evring_query (ring, &query, pack);       //  {events, next, ...}
        lh_evring_destroy (&ring);                  //  flushes what is queued

    At start the ring is filled again from the log's tail: the newest
    ring_max events of the current and rotated files, with their seq; a
    line that does not parse (a torn last line after kill -9) is skipped
    and counted. So after a crash every event up to the last flush is
    back: the loss is bounded by flush_ms.

    Log line (one per event, in seq order):
        {"seq":7,"bseq":1234,"time":"2026-01-02T03:04:05.123456Z",
         "topic":"catalog.changed","source":"catalogd-0","body":{...}}
    A body larger than body_max is not kept: "body" is null and
    "body_omitted" gives its size. A body JSON cannot carry (a map with
    integer keys, bytes that are not UTF-8) is kept as its msgpack bytes
    (bin, {"$base64": ...} in JSON).
    =========================================================================
*/

#ifndef LH_EVRING_H_INCLUDED
#define LH_EVRING_H_INCLUDED

#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_EVRING_LIMIT_MAX     1000    //  most events one query returns
#define LH_EVRING_SOURCE_MAX    64      //  longest source name kept
#define LH_EVRING_TOPIC_MAX     255     //  longest topic kept

//  How the ring and its log behave
typedef struct {
    size_t ring_max;                    //  most events held (0: 100000)
    size_t ring_bytes;                  //  most bytes held (0: 256 MiB)
    size_t body_max;                    //  largest body kept (0: 64 KiB)
    const char *dir;                    //  log directory, or NULL for none
    size_t log_max_bytes;               //  rotate past this (0: 64 MiB)
    size_t log_files;                   //  rotated files kept (0: 4)
    int flush_ms;                       //  write queued lines this often (0: 200)
    bool fsync;                         //  fdatasync after each write
    size_t buffer_max;                  //  queued log bytes before lines are dropped (0: 16 MiB)
    size_t topics_max;                  //  distinct topics counted (0: 1024)
} lh_evring_opts_t;

//  What lh_evring_query selects. Cursors are exclusive: since_seq N gives
//  the events after seq N.
typedef struct {
    uint64_t since_seq;                 //  events with seq > this
    uint64_t since_bseq;                //  and bseq > this (0: any)
    uint64_t since_time_us;             //  and time >= this (0: any)
    const char *type;                   //  topic prefix, or NULL
    size_t type_size;                   //  its size
    const char *source;                 //  exact source, or NULL
    size_t source_size;                 //  its size
    size_t limit;                       //  most events (1..LH_EVRING_LIMIT_MAX)
    size_t reply_max;                   //  stop adding events past this many bytes (0: any)
} lh_evquery_t;

typedef struct _lh_evring_t lh_evring_t;

//  Create the ring, reload the log's tail into it, open the log and start
//  the writer thread. Never fails for the log's sake (a log that cannot be
//  opened is retried at each flush, and counted).
lh_evring_t *
    lh_evring_new (const lh_evring_opts_t *opts);

//  Flush what is queued, stop the writer; nulls the caller's pointer
void
    lh_evring_destroy (lh_evring_t **self_p);

//  Append an event: bseq (0 if none), time in us since the epoch, topic,
//  source, and its msgpack body (NULL/0: none). Topic and source are made
//  safe (control characters and bytes that are not UTF-8 become '?') and
//  cut at their maxima. If pack is not NULL the stored event is packed
//  into it as a map. Returns the event's seq.
uint64_t
    lh_evring_append (lh_evring_t *self, uint64_t bseq, uint64_t time_us,
                      const char *topic, size_t topic_size,
                      const char *source, size_t source_size,
                      const void *body, size_t body_size, lh_pack_t *pack);

//  Pack {events: [...], count, next, truncated, missed, oldest, newest}
//  for a query. next is the cursor for the following page (pass it as
//  since_seq); truncated says more matching events may follow it;
//  missed counts events evicted between since_seq and the oldest held.
void
    lh_evring_query (lh_evring_t *self, const lh_evquery_t *query, lh_pack_t *pack);

//  Write the counters as key/value pairs into an open map (docs/observerd.md
//  "stats")
void
    lh_evring_stats (lh_evring_t *self, lh_pack_t *pack);

//  Write what is queued now, from the caller's thread. Returns 0, or -1
//  if the write failed (counted as the writer's would be).
int
    lh_evring_flush (lh_evring_t *self);

//  The seq of the newest event written to the log (0: none)
uint64_t
    lh_evring_flushed_seq (lh_evring_t *self);

//  Microseconds since the epoch, now
uint64_t
    lh_evring_now_us (void);

//  RFC 3339 UTC with microseconds into text (32 bytes)
void
    lh_evring_time_text (uint64_t time_us, char *text);

//  Parse an RFC 3339 time ("2026-01-02T03:04:05Z", fractions and offsets
//  allowed) into us since the epoch. Returns 0, or -1 if it is not one.
int
    lh_evring_time_parse (const char *text, size_t size, uint64_t *time_us);

//  Clean text for storing: check it is UTF-8 (-1 if not), drop control
//  characters (C0, DEL, C1; \n and \t kept when keep_lines), keep at most
//  max_chars characters (0: any). Appends to out; returns 0, or -1.
int
    lh_evring_clean_text (const char *text, size_t size, bool keep_lines,
                          size_t max_chars, zchunk_t *out);

//  Self test of this class
void
    lh_evring_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
