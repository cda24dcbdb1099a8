/*  =========================================================================
    lh_evring - observerd's events: a bounded ring and a JSONL log; see
    lh_evring.h

    One mutex (lock) guards the ring, the counters and the queue of log
    lines: an append takes its seq, joins the ring and queues its line in
    one critical section, so the log is always in seq order. A second one
    (file_lock) serialises the file itself between the writer thread and
    lh_evring_flush: the lines are written outside lock, so appends never
    wait for the disk.

    The ring is a circular array of event pointers, grown by doubling up
    to ring_max; each event is one allocation (fixed part, topic, source,
    body). Seqs are increasing but may have gaps after a reload (a line
    the log could not take), so a seq is found by binary search.
    =========================================================================
*/

#include "lh_evring.h"
#include "lh_json.h"
#include "lh_log.h"
#include <pthread.h>

#define S_NAME              "observerd"
#define S_LOG_FILE          "events.jsonl"
#define S_WARN_EVERY_MS     10000       //  at most one warning about the log per this
#define S_LINE_MAX          (64 * 1024 * 1024)  //  a longer log line is skipped at reload

//  One stored event, one allocation: topic, NUL, source, NUL, body
typedef struct {
    uint64_t seq;                       //  observerd's sequence number
    uint64_t bseq;                      //  the broker's, 0 if none
    uint64_t time_us;                   //  us since the epoch
    uint32_t body_size;                 //  msgpack body bytes
    uint32_t omitted;                   //  original body size when not kept
    uint16_t topic_size;                //  topic bytes
    uint8_t source_size;                //  source bytes
    char data [];                       //  topic, source, body
} s_event_t;

#define S_TOPIC(event)      ((event)->data)
#define S_SOURCE(event)     ((event)->data + (event)->topic_size + 1)
#define S_BODY(event)       ((event)->data + (event)->topic_size + (event)->source_size + 2)
#define S_BYTES(event)      (sizeof (s_event_t) + (event)->topic_size + (event)->source_size \
                             + 2 + (event)->body_size)

//  Queued log lines
typedef struct {
    char *data;                         //  the lines
    size_t size;                        //  bytes used
    size_t max;                         //  bytes allocated
    size_t lines;                       //  lines held
    uint64_t last_seq;                  //  seq of the last line
} s_buffer_t;

struct _lh_evring_t {
    lh_evring_opts_t opts;              //  settings (dir points at our copy)
    char *dir;                          //  log directory, or NULL
    char *path;                         //  DIR/events.jsonl, or NULL
    pthread_mutex_t lock;               //  ring, counters, queued lines
    s_event_t **ring;                   //  circular array
    size_t capacity;                    //  slots allocated
    size_t head;                        //  index of the oldest
    size_t count;                       //  events held
    size_t bytes;                       //  bytes held
    uint64_t next_seq;                  //  seq of the next append
    uint64_t received;                  //  appends since start
    uint64_t evicted;                   //  events evicted since start
    uint64_t omitted;                   //  bodies over body_max not kept
    uint64_t binary;                    //  bodies kept as bin (not JSON)
    zhashx_t *topics;                   //  topic -> uint64_t * count
    uint64_t topics_other;              //  events of topics past topics_max
    s_buffer_t pending;                 //  lines waiting for the writer
    uint64_t log_dropped;               //  lines dropped: queue full
    uint64_t logged;                    //  lines written
    uint64_t log_errors;                //  failed opens, writes, syncs
    uint64_t log_lost;                  //  lines lost to failed writes
    uint64_t log_bytes;                 //  bytes written since start
    uint64_t rotations;                 //  files rotated since start
    uint64_t flushed_seq;               //  seq of the newest line written
    uint64_t last_flush_us;             //  when the last write ended
    uint64_t reloaded;                  //  events reloaded at start
    uint64_t reload_skipped;            //  lines skipped at reload
    pthread_mutex_t file_lock;          //  the file (writer vs flush)
    int fd;                             //  the open log, or -1
    uint64_t file_size;                 //  its size
    int64_t last_warn;                  //  monotonic ms of the last warning
    pthread_t writer;                   //  the writer thread
    bool writer_started;                //  it runs
    pthread_cond_t wake;                //  wakes the writer (stop)
    bool stop;                          //  the writer should end
};


//  --------------------------------------------------------------------------
//  Microseconds since the epoch, now

uint64_t
lh_evring_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
}


//  --------------------------------------------------------------------------
//  RFC 3339 UTC with microseconds into text (32 bytes)

void
lh_evring_time_text (uint64_t time_us, char *text)
{
    time_t seconds = (time_t) (time_us / 1000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char seconds_text [24];
    strftime (seconds_text, sizeof (seconds_text), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (text, 32, "%.20s.%06uZ", seconds_text, (unsigned) (time_us % 1000000));
}


//  --------------------------------------------------------------------------
//  Read exactly count digits at text; -1 if they are not there

static int
s_digits (const char *text, size_t size, size_t at, size_t count)
{
    if (at + count > size)
        return -1;
    int value = 0;
    for (size_t index = at; index < at + count; index++) {
        if (!isdigit ((unsigned char) text [index]))
            return -1;
        value = value * 10 + (text [index] - '0');
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Parse an RFC 3339 time into us since the epoch. Returns 0, or -1.

int
lh_evring_time_parse (const char *text, size_t size, uint64_t *time_us)
{
    int year = s_digits (text, size, 0, 4);
    int month = s_digits (text, size, 5, 2);
    int day = s_digits (text, size, 8, 2);
    int hour = s_digits (text, size, 11, 2);
    int minute = s_digits (text, size, 14, 2);
    int second = s_digits (text, size, 17, 2);
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31
    ||  hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60
    ||  text [4] != '-' || text [7] != '-' || !strchr ("Tt ", text [10])
    ||  text [13] != ':' || text [16] != ':')
        return -1;
    size_t at = 19;
    uint64_t micros = 0;
    if (at < size && text [at] == '.') {
        at++;
        size_t digits = 0;
        while (at < size && isdigit ((unsigned char) text [at])) {
            if (digits < 6)
                micros = micros * 10 + (uint64_t) (text [at] - '0');
            digits++;
            at++;
        }
        if (digits == 0)
            return -1;
        for (; digits < 6; digits++)
            micros *= 10;
    }
    int64_t offset = 0;
    if (at < size && (text [at] == 'Z' || text [at] == 'z'))
        at++;
    else
    if (at < size && (text [at] == '+' || text [at] == '-')) {
        int hours = s_digits (text, size, at + 1, 2);
        int minutes = s_digits (text, size, at + 4, 2);
        if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59 || text [at + 3] != ':')
            return -1;
        offset = (int64_t) (hours * 60 + minutes) * 60 * (text [at] == '+'? 1: -1);
        at += 6;
    }
    else
        return -1;
    if (at != size)
        return -1;
    struct tm tm = { .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                     .tm_hour = hour, .tm_min = minute, .tm_sec = second };
    int64_t seconds = (int64_t) timegm (&tm) - offset;
    if (seconds < 0)
        return -1;
    *time_us = (uint64_t) seconds * 1000000 + micros;
    return 0;
}


//  --------------------------------------------------------------------------
//  Decode one UTF-8 character at text; its size (1..4) and *code, or 0 if
//  the bytes there are not valid UTF-8 (overlong, surrogate, past U+10FFFF)

static size_t
s_utf8_next (const uint8_t *text, size_t size, uint32_t *code)
{
    uint8_t lead = text [0];
    size_t length;
    uint32_t value, least;
    if (lead < 0x80) {
        *code = lead;
        return 1;
    }
    else
    if ((lead & 0xE0) == 0xC0) {
        length = 2, value = lead & 0x1F, least = 0x80;
    }
    else
    if ((lead & 0xF0) == 0xE0) {
        length = 3, value = lead & 0x0F, least = 0x800;
    }
    else
    if ((lead & 0xF8) == 0xF0) {
        length = 4, value = lead & 0x07, least = 0x10000;
    }
    else
        return 0;
    if (length > size)
        return 0;
    for (size_t index = 1; index < length; index++) {
        if ((text [index] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (text [index] & 0x3F);
    }
    if (value < least || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return 0;
    *code = value;
    return length;
}


//  --------------------------------------------------------------------------
//  Is this character a control character (C0, DEL, C1)?

static bool
s_control (uint32_t code)
{
    return code < 0x20 || code == 0x7F || (code >= 0x80 && code <= 0x9F);
}


//  --------------------------------------------------------------------------
//  Clean text for storing; see the header. Returns 0, or -1 (not UTF-8).

int
lh_evring_clean_text (const char *text, size_t size, bool keep_lines,
                      size_t max_chars, zchunk_t *out)
{
    const uint8_t *bytes = (const uint8_t *) text;
    size_t at = 0, chars = 0;
    while (at < size) {
        uint32_t code;
        size_t length = s_utf8_next (bytes + at, size - at, &code);
        if (length == 0)
            return -1;
        bool keep = !s_control (code) || (keep_lines && (code == '\n' || code == '\t'));
        if (keep && (max_chars == 0 || chars < max_chars)) {
            zchunk_extend (out, bytes + at, length);
            chars++;
        }
        at += length;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Copy a topic or source made safe: control characters and bytes that
//  are not UTF-8 become '?', cut at max bytes (never inside a character).
//  Returns the size written into out (max + 1 bytes, NUL-terminated).

static size_t
s_sanitize (const char *text, size_t size, size_t max, char *out)
{
    const uint8_t *bytes = (const uint8_t *) text;
    size_t at = 0, used = 0;
    while (at < size) {
        uint32_t code;
        size_t length = s_utf8_next (bytes + at, size - at, &code);
        if (length == 0 || s_control (code)) {
            if (used + 1 > max)
                break;
            out [used++] = '?';
            at += length? length: 1;
            continue;
        }
        if (used + length > max)
            break;
        memcpy (out + used, bytes + at, length);
        used += length;
        at += length;
    }
    out [used] = 0;
    return used;
}


//  --------------------------------------------------------------------------
//  Append text as a JSON string (quotes, \\ and \" escaped; the text is
//  already free of control characters)

static void
s_json_string (zchunk_t *out, const char *text)
{
    zchunk_extend (out, "\"", 1);
    for (const char *scan = text; *scan; scan++) {
        if (*scan == '"' || *scan == '\\')
            zchunk_extend (out, "\\", 1);
        zchunk_extend (out, scan, 1);
    }
    zchunk_extend (out, "\"", 1);
}


//  --------------------------------------------------------------------------
//  The event at position index (0 = oldest)

static s_event_t *
s_at (lh_evring_t *self, size_t index)
{
    return self->ring [(self->head + index) % self->capacity];
}


//  --------------------------------------------------------------------------
//  Remove the oldest event

static void
s_evict (lh_evring_t *self)
{
    s_event_t *event = self->ring [self->head];
    self->ring [self->head] = NULL;
    self->head = (self->head + 1) % self->capacity;
    self->count--;
    self->bytes -= S_BYTES (event);
    self->evicted++;
    free (event);
}


//  --------------------------------------------------------------------------
//  Put an event into the ring, evicting the oldest as the bounds ask

static void
s_insert (lh_evring_t *self, s_event_t *event)
{
    size_t bytes = S_BYTES (event);
    while (self->count > 0
       && (self->count >= self->opts.ring_max || self->bytes + bytes > self->opts.ring_bytes))
        s_evict (self);
    if (self->count == self->capacity) {
        size_t capacity = self->capacity? self->capacity * 2: 1024;
        if (capacity > self->opts.ring_max)
            capacity = self->opts.ring_max;
        s_event_t **ring = (s_event_t **) calloc (capacity, sizeof (s_event_t *));
        assert (ring);
        for (size_t index = 0; index < self->count; index++)
            ring [index] = s_at (self, index);
        free (self->ring);
        self->ring = ring;
        self->capacity = capacity;
        self->head = 0;
    }
    self->ring [(self->head + self->count) % self->capacity] = event;
    self->count++;
    self->bytes += bytes;
}


//  --------------------------------------------------------------------------
//  Make an event (topic and source already safe)

static s_event_t *
s_event_new (uint64_t seq, uint64_t bseq, uint64_t time_us, const char *topic,
             const char *source, const void *body, size_t body_size, uint32_t omitted)
{
    size_t topic_size = strlen (topic), source_size = strlen (source);
    s_event_t *event = (s_event_t *) malloc (sizeof (s_event_t) + topic_size + source_size
                                             + 2 + body_size);
    assert (event);
    event->seq = seq;
    event->bseq = bseq;
    event->time_us = time_us;
    event->body_size = (uint32_t) body_size;
    event->omitted = omitted;
    event->topic_size = (uint16_t) topic_size;
    event->source_size = (uint8_t) source_size;
    memcpy (S_TOPIC (event), topic, topic_size + 1);
    memcpy (S_SOURCE (event), source, source_size + 1);
    if (body_size)
        memcpy (S_BODY (event), body, body_size);
    return event;
}


//  --------------------------------------------------------------------------
//  Free a topic's count

static void
s_count_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Count an event under its topic

static void
s_count_topic (lh_evring_t *self, const char *topic)
{
    uint64_t *count = (uint64_t *) zhashx_lookup (self->topics, topic);
    if (!count && zhashx_size (self->topics) < self->opts.topics_max) {
        count = (uint64_t *) zmalloc (sizeof (uint64_t));
        assert (count);
        zhashx_insert (self->topics, topic, count);
    }
    if (count)
        (*count)++;
    else
        self->topics_other++;
}


//  --------------------------------------------------------------------------
//  Pack one event as a map

static void
s_pack_event (lh_pack_t *pack, const s_event_t *event)
{
    char time [32];
    lh_evring_time_text (event->time_us, time);
    lh_pack_open_map (pack);
    lh_pack_kv_uint (pack, "seq", event->seq);
    lh_pack_kv_uint (pack, "bseq", event->bseq);
    lh_pack_kv_str (pack, "time", time);
    lh_pack_kv_str (pack, "topic", S_TOPIC (event));
    lh_pack_kv_str (pack, "source", S_SOURCE (event));
    lh_pack_str (pack, "body");
    lh_pack_raw (pack, S_BODY (event), event->body_size);
    if (event->omitted)
        lh_pack_kv_uint (pack, "body_omitted", event->omitted);
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  Warn about the log, at most once per S_WARN_EVERY_MS (counting always
//  happens at the caller)

static void
s_warn (lh_evring_t *self, const char *format, ...)
{
    int64_t now = zclock_mono ();
    if (self->last_warn && now - self->last_warn < S_WARN_EVERY_MS)
        return;
    self->last_warn = now;
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    lh_warn (S_NAME, NULL, "%s (the ring goes on; see stats log_errors)", text);
    zstr_free (&text);
}


//  --------------------------------------------------------------------------
//  Open the log for appending (file_lock held). Returns 0, or -1.

static int
s_log_open (lh_evring_t *self)
{
    if (zsys_dir_create ("%s", self->dir) != 0) {
        s_warn (self, "cannot create the event log directory %s: %s", self->dir, strerror (errno));
        return -1;
    }
    self->fd = open (self->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        s_warn (self, "cannot open the event log %s: %s", self->path, strerror (errno));
        return -1;
    }
    struct stat info;
    self->file_size = fstat (self->fd, &info) == 0? (uint64_t) info.st_size: 0;
    return 0;
}


//  --------------------------------------------------------------------------
//  Rotate: events.jsonl -> .1 -> .2 ... (the oldest past log_files goes),
//  then a fresh events.jsonl (file_lock held)

static void
s_log_rotate (lh_evring_t *self)
{
    close (self->fd);
    self->fd = -1;
    for (size_t index = self->opts.log_files; index >= 1; index--) {
        char *from = index == 1? strdup (self->path): zsys_sprintf ("%s.%zu", self->path, index - 1);
        char *to = zsys_sprintf ("%s.%zu", self->path, index);
        if (rename (from, to) != 0 && errno != ENOENT)
            s_warn (self, "cannot rename %s to %s: %s", from, to, strerror (errno));
        zstr_free (&from);
        zstr_free (&to);
    }
    int dir = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync (dir);
        close (dir);
    }
    self->rotations++;
    s_log_open (self);
}


//  --------------------------------------------------------------------------
//  Write the queued lines (from the writer or lh_evring_flush). Returns 0,
//  or -1 if they could not all be written.

static int
s_flush (lh_evring_t *self)
{
    pthread_mutex_lock (&self->file_lock);
    pthread_mutex_lock (&self->lock);
    s_buffer_t batch = self->pending;
    self->pending = (s_buffer_t) { 0 };
    pthread_mutex_unlock (&self->lock);

    int rc = 0;
    bool written = false;
    if (batch.size > 0) {
        if (self->fd < 0 && s_log_open (self))
            rc = -1;
        size_t done = 0;
        while (rc == 0 && done < batch.size) {
            ssize_t wrote = write (self->fd, batch.data + done, batch.size - done);
            if (wrote < 0 && errno == EINTR)
                continue;
            if (wrote <= 0) {
                s_warn (self, "cannot write the event log %s: %s", self->path,
                        wrote < 0? strerror (errno): "nothing written");
                //  Never leave half a line for the next write to run into
                if (done > 0 && ftruncate (self->fd, (off_t) self->file_size) != 0)
                    s_warn (self, "cannot truncate %s: %s", self->path, strerror (errno));
                rc = -1;
                break;
            }
            done += (size_t) wrote;
        }
        written = rc == 0;
        if (written) {
            self->file_size += batch.size;
            //  Written but perhaps not durable: counted, the lines stay logged
            if (self->opts.fsync && fdatasync (self->fd) != 0) {
                s_warn (self, "cannot sync the event log %s: %s", self->path, strerror (errno));
                rc = -1;
            }
        }
    }
    pthread_mutex_lock (&self->lock);
    if (batch.size > 0) {
        if (written) {
            self->last_flush_us = lh_evring_now_us ();
            self->logged += batch.lines;
            self->log_bytes += batch.size;
            self->flushed_seq = batch.last_seq;
        }
        else
            self->log_lost += batch.lines;
        if (rc)
            self->log_errors++;
    }
    pthread_mutex_unlock (&self->lock);
    if (written && self->fd >= 0 && self->file_size >= self->opts.log_max_bytes)
        s_log_rotate (self);
    pthread_mutex_unlock (&self->file_lock);
    free (batch.data);
    return rc;
}


//  --------------------------------------------------------------------------
//  The writer thread: flush every flush_ms until stopped, then once more

static void *
s_writer (void *arg)
{
    lh_evring_t *self = (lh_evring_t *) arg;
    pthread_setname_np (pthread_self (), "observerd-log");
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        uint64_t nanos = (uint64_t) until.tv_nsec + (uint64_t) self->opts.flush_ms * 1000000;
        until.tv_sec += (time_t) (nanos / 1000000000);
        until.tv_nsec = (long) (nanos % 1000000000);
        pthread_cond_timedwait (&self->wake, &self->lock, &until);
        if (self->pending.size == 0)
            continue;
        pthread_mutex_unlock (&self->lock);
        s_flush (self);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    s_flush (self);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Queue an event's log line (lock held). body_json is the body as JSON.

static void
s_queue_line (lh_evring_t *self, const s_event_t *event, const char *body_json,
              size_t body_json_size)
{
    char time [32];
    lh_evring_time_text (event->time_us, time);
    char head [128];
    int head_size = snprintf (head, sizeof (head), "{\"seq\":%" PRIu64 ",\"bseq\":%" PRIu64
                              ",\"time\":\"%s\",\"topic\":", event->seq, event->bseq, time);
    zchunk_t *line = zchunk_new (NULL, (size_t) head_size + event->topic_size * 2
                                 + event->source_size * 2 + body_json_size + 64);
    zchunk_extend (line, head, (size_t) head_size);
    s_json_string (line, S_TOPIC (event));
    zchunk_extend (line, ",\"source\":", 10);
    s_json_string (line, S_SOURCE (event));
    zchunk_extend (line, ",\"body\":", 8);
    zchunk_extend (line, body_json, body_json_size);
    if (event->omitted) {
        char omitted [48];
        int size = snprintf (omitted, sizeof (omitted), ",\"body_omitted\":%u", event->omitted);
        zchunk_extend (line, omitted, (size_t) size);
    }
    zchunk_extend (line, "}\n", 2);
    size_t size = zchunk_size (line);
    s_buffer_t *pending = &self->pending;
    if (pending->size + size > self->opts.buffer_max)
        self->log_dropped++;
    else {
        if (pending->size + size > pending->max) {
            size_t max = pending->max? pending->max * 2: 65536;
            while (max < pending->size + size)
                max *= 2;
            pending->data = (char *) realloc (pending->data, max);
            assert (pending->data);
            pending->max = max;
        }
        memcpy (pending->data + pending->size, zchunk_data (line), size);
        pending->size += size;
        pending->lines++;
        pending->last_seq = event->seq;
    }
    zchunk_destroy (&line);
}


//  --------------------------------------------------------------------------
//  Append an event; returns its seq

uint64_t
lh_evring_append (lh_evring_t *self, uint64_t bseq, uint64_t time_us,
                  const char *topic, size_t topic_size,
                  const char *source, size_t source_size,
                  const void *body, size_t body_size, lh_pack_t *pack)
{
    assert (self);
    char safe_topic [LH_EVRING_TOPIC_MAX + 1], safe_source [LH_EVRING_SOURCE_MAX + 1];
    s_sanitize (topic? topic: "", topic? topic_size: 0, LH_EVRING_TOPIC_MAX, safe_topic);
    s_sanitize (source? source: "", source? source_size: 0, LH_EVRING_SOURCE_MAX, safe_source);

    //  The body as kept and as JSON: as it came, as bin if JSON cannot
    //  carry it, or nil (and its size) when it is too large
    uint32_t omitted = 0;
    lh_pack_t *bin = NULL;
    char *json = NULL;
    bool binary = false;
    if (!body || body_size == 0)
        body = "\xc0", body_size = 1;
    else
    if (body_size > self->opts.body_max) {
        omitted = body_size > UINT32_MAX? UINT32_MAX: (uint32_t) body_size;
        body = "\xc0", body_size = 1;
    }
    else {
        json = lh_json_text_from_msgpack (body, body_size, NULL, NULL);
        if (!json) {
            bin = lh_pack_new ();
            lh_pack_bin (bin, body, body_size);
            body = lh_pack_data (bin, &body_size);
            json = lh_json_text_from_msgpack (body, body_size, NULL, NULL);
            assert (json);
            binary = true;
        }
    }
    pthread_mutex_lock (&self->lock);
    uint64_t seq = self->next_seq++;
    s_event_t *event = s_event_new (seq, bseq, time_us, safe_topic, safe_source,
                                    body, body_size, omitted);
    s_insert (self, event);
    self->received++;
    if (omitted)
        self->omitted++;
    if (binary)
        self->binary++;
    s_count_topic (self, safe_topic);
    if (self->dir)
        s_queue_line (self, event, json? json: "null", json? strlen (json): 4);
    if (pack)
        s_pack_event (pack, event);
    pthread_mutex_unlock (&self->lock);
    free (json);
    lh_pack_destroy (&bin);
    return seq;
}


//  --------------------------------------------------------------------------
//  Index of the first event with seq > since (count if none; lock held)

static size_t
s_find_after (lh_evring_t *self, uint64_t since)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (s_at (self, middle)->seq <= since)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}


//  --------------------------------------------------------------------------
//  Does an event pass a query's filters?

static bool
s_matches (const s_event_t *event, const lh_evquery_t *query)
{
    if (query->since_bseq && event->bseq <= query->since_bseq)
        return false;
    if (query->since_time_us && event->time_us < query->since_time_us)
        return false;
    if (query->type && (event->topic_size < query->type_size
                    ||  memcmp (S_TOPIC (event), query->type, query->type_size) != 0))
        return false;
    if (query->source && (event->source_size != query->source_size
                      ||  memcmp (S_SOURCE (event), query->source, query->source_size) != 0))
        return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Pack the events a query selects, with next, truncated and missed

void
lh_evring_query (lh_evring_t *self, const lh_evquery_t *query, lh_pack_t *pack)
{
    assert (self);
    assert (query);
    size_t limit = query->limit? query->limit: 100;
    if (limit > LH_EVRING_LIMIT_MAX)
        limit = LH_EVRING_LIMIT_MAX;
    lh_pack_open_map (pack);
    lh_pack_str (pack, "events");
    lh_pack_open_array (pack);
    size_t base;
    lh_pack_data (pack, &base);

    pthread_mutex_lock (&self->lock);
    uint64_t oldest = self->count? s_at (self, 0)->seq: self->next_seq;
    uint64_t newest = self->count? s_at (self, self->count - 1)->seq: self->next_seq - 1;
    uint64_t missed = oldest > query->since_seq + 1? oldest - query->since_seq - 1: 0;
    uint64_t next = query->since_seq > newest? query->since_seq: newest;
    size_t count = 0;
    bool truncated = false;
    for (size_t index = s_find_after (self, query->since_seq); index < self->count; index++) {
        s_event_t *event = s_at (self, index);
        if (count == limit) {
            truncated = true;
            break;
        }
        size_t used;
        lh_pack_data (pack, &used);
        if (count > 0 && query->reply_max && used - base + S_BYTES (event) > query->reply_max) {
            truncated = true;
            break;
        }
        next = event->seq;
        if (!s_matches (event, query))
            continue;
        s_pack_event (pack, event);
        count++;
    }
    pthread_mutex_unlock (&self->lock);

    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "count", count);
    lh_pack_kv_uint (pack, "next", next);
    lh_pack_kv_bool (pack, "truncated", truncated);
    lh_pack_kv_uint (pack, "missed", missed);
    lh_pack_kv_uint (pack, "oldest", oldest);
    lh_pack_kv_uint (pack, "newest", newest);
    lh_pack_close (pack);
}


//  --------------------------------------------------------------------------
//  Write the counters as key/value pairs into an open map

void
lh_evring_stats (lh_evring_t *self, lh_pack_t *pack)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    char last_flush [32] = "";
    if (self->last_flush_us)
        lh_evring_time_text (self->last_flush_us, last_flush);
    lh_pack_kv_uint (pack, "ring_size", self->count);
    lh_pack_kv_uint (pack, "ring_max", self->opts.ring_max);
    lh_pack_kv_uint (pack, "ring_bytes", self->bytes);
    lh_pack_kv_uint (pack, "ring_bytes_max", self->opts.ring_bytes);
    lh_pack_kv_uint (pack, "oldest", self->count? s_at (self, 0)->seq: 0);
    lh_pack_kv_uint (pack, "newest", self->count? s_at (self, self->count - 1)->seq: 0);
    lh_pack_kv_uint (pack, "received", self->received);
    lh_pack_kv_uint (pack, "evicted", self->evicted);
    lh_pack_kv_uint (pack, "bodies_omitted", self->omitted);
    lh_pack_kv_uint (pack, "bodies_binary", self->binary);
    lh_pack_kv_bool (pack, "log_enabled", self->dir != NULL);
    lh_pack_kv_uint (pack, "logged", self->logged);
    lh_pack_kv_uint (pack, "log_errors", self->log_errors);
    lh_pack_kv_uint (pack, "log_lost", self->log_lost + self->log_dropped);
    lh_pack_kv_uint (pack, "log_queued", self->pending.lines);
    lh_pack_kv_uint (pack, "log_bytes", self->log_bytes);
    lh_pack_kv_uint (pack, "log_rotations", self->rotations);
    lh_pack_kv_uint (pack, "flushed_seq", self->flushed_seq);
    lh_pack_str (pack, "last_flush");
    if (*last_flush)
        lh_pack_str (pack, last_flush);
    else
        lh_pack_nil (pack);
    lh_pack_kv_uint (pack, "flush_ms", (uint64_t) self->opts.flush_ms);
    lh_pack_kv_uint (pack, "reloaded", self->reloaded);
    lh_pack_kv_uint (pack, "reload_skipped", self->reload_skipped);
    lh_pack_str (pack, "topics");
    lh_pack_open_map (pack);
    for (uint64_t *count = (uint64_t *) zhashx_first (self->topics); count;
         count = (uint64_t *) zhashx_next (self->topics)) {
        lh_pack_str (pack, (const char *) zhashx_cursor (self->topics));
        lh_pack_uint (pack, *count);
    }
    lh_pack_close (pack);
    lh_pack_kv_uint (pack, "topics_other", self->topics_other);
    pthread_mutex_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Write what is queued now. Returns 0, or -1.

int
lh_evring_flush (lh_evring_t *self)
{
    assert (self);
    if (!self->dir)
        return 0;
    return s_flush (self);
}


//  --------------------------------------------------------------------------
//  The seq of the newest event written to the log

uint64_t
lh_evring_flushed_seq (lh_evring_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    uint64_t seq = self->flushed_seq;
    pthread_mutex_unlock (&self->lock);
    return seq;
}


//  --------------------------------------------------------------------------
//  Read one log line back into the ring. Returns 0, or -1 if it does not
//  parse as an event.

static int
s_reload_line (lh_evring_t *self, const char *text, size_t size)
{
    json_t *line = lh_json_parse (text, size, NULL, NULL);
    if (!line)
        return -1;
    int rc = -1;
    json_t *seq = json_object_get (line, "seq"), *bseq = json_object_get (line, "bseq");
    json_t *time = json_object_get (line, "time"), *topic = json_object_get (line, "topic");
    json_t *source = json_object_get (line, "source"), *body = json_object_get (line, "body");
    json_t *omitted = json_object_get (line, "body_omitted");
    uint64_t time_us;
    if (json_is_integer (seq) && json_integer_value (seq) > 0
    &&  json_is_integer (bseq) && json_integer_value (bseq) >= 0
    &&  json_is_string (time) && json_is_string (topic) && json_is_string (source) && body
    &&  (!omitted || (json_is_integer (omitted) && json_integer_value (omitted) > 0))
    &&  lh_evring_time_parse (json_string_value (time), json_string_length (time), &time_us) == 0) {
        lh_pack_t *pack = lh_pack_new ();
        if (lh_json_to_pack (body, pack, &lh_limits_default, NULL) == 0) {
            size_t body_size;
            const void *data = lh_pack_data (pack, &body_size);
            char safe_topic [LH_EVRING_TOPIC_MAX + 1], safe_source [LH_EVRING_SOURCE_MAX + 1];
            s_sanitize (json_string_value (topic), json_string_length (topic),
                        LH_EVRING_TOPIC_MAX, safe_topic);
            s_sanitize (json_string_value (source), json_string_length (source),
                        LH_EVRING_SOURCE_MAX, safe_source);
            uint64_t number = (uint64_t) json_integer_value (seq);
            s_event_t *event = s_event_new (number, (uint64_t) json_integer_value (bseq), time_us,
                                            safe_topic, safe_source, data, body_size,
                                            omitted? (uint32_t) json_integer_value (omitted): 0);
            //  Seqs only grow: a line out of order is not ours
            if (self->count && s_at (self, self->count - 1)->seq >= number)
                free (event);
            else {
                s_insert (self, event);
                if (number >= self->next_seq)
                    self->next_seq = number + 1;
                rc = 0;
            }
        }
        lh_pack_destroy (&pack);
    }
    json_decref (line);
    return rc;
}


//  --------------------------------------------------------------------------
//  Open a log file for reading if it is a regular file (a log that is a
//  device, /dev/full say, is never read back); NULL otherwise

static FILE *
s_regular_open (const char *path)
{
    FILE *file = fopen (path, "rb");
    struct stat info;
    if (file && (fstat (fileno (file), &info) != 0 || !S_ISREG (info.st_mode))) {
        fclose (file);
        file = NULL;
    }
    return file;
}


//  --------------------------------------------------------------------------
//  Lines in a file (newline characters), or 0 if it cannot be read

static size_t
s_count_lines (const char *path)
{
    FILE *file = s_regular_open (path);
    if (!file)
        return 0;
    size_t lines = 0;
    char buffer [65536];
    size_t got;
    while ((got = fread (buffer, 1, sizeof (buffer), file)) > 0)
        for (const char *scan = buffer; (scan = (const char *) memchr (scan, '\n',
                                         (size_t) (buffer + got - scan))) != NULL; scan++)
            lines++;
    fclose (file);
    return lines;
}


//  --------------------------------------------------------------------------
//  Cut a torn last line (no newline after it) off the current log

static void
s_cut_torn_tail (lh_evring_t *self)
{
    int fd = open (self->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat info;
    if (fstat (fd, &info) == 0 && S_ISREG (info.st_mode) && info.st_size > 0) {
        off_t end = info.st_size;
        char buffer [4096];
        while (end > 0) {
            off_t from = end > (off_t) sizeof (buffer)? end - (off_t) sizeof (buffer): 0;
            ssize_t got = pread (fd, buffer, (size_t) (end - from), from);
            if (got <= 0)
                break;
            char *newline = (char *) memrchr (buffer, '\n', (size_t) got);
            if (newline) {
                end = from + (newline - buffer) + 1;
                break;
            }
            end = from;
        }
        if (end < info.st_size) {
            if (ftruncate (fd, end) == 0) {
                self->reload_skipped++;
                lh_warn (S_NAME, NULL, "the event log %s ended in a torn line (%" PRId64
                         " bytes): cut", self->path, (int64_t) (info.st_size - end));
            }
        }
    }
    close (fd);
}


//  --------------------------------------------------------------------------
//  Fill the ring from the log's tail: the newest ring_max events of the
//  rotated files and the current one

static void
s_reload (lh_evring_t *self)
{
    s_cut_torn_tail (self);
    //  From the newest file back, until the files hold ring_max lines
    size_t first = 0;                   //  0 = current, N = events.jsonl.N
    size_t lines = s_count_lines (self->path);
    while (lines < self->opts.ring_max && first < self->opts.log_files) {
        char *older = zsys_sprintf ("%s.%zu", self->path, first + 1);
        bool exists = zsys_file_exists (older);
        if (exists)
            lines += s_count_lines (older);
        zstr_free (&older);
        if (!exists)
            break;
        first++;
    }
    for (size_t index = first + 1; index-- > 0; ) {
        char *path = index? zsys_sprintf ("%s.%zu", self->path, index): strdup (self->path);
        FILE *file = s_regular_open (path);
        char *line = NULL;
        size_t line_max = 0;
        ssize_t size;
        while (file && (size = getline (&line, &line_max, file)) > 0) {
            if (line [size - 1] == '\n')
                size--;
            if (size == 0)
                continue;
            if (size > S_LINE_MAX || s_reload_line (self, line, (size_t) size))
                self->reload_skipped++;
        }
        free (line);
        if (file)
            fclose (file);
        zstr_free (&path);
    }
    //  Evictions at reload are not evictions of this run
    self->evicted = 0;
    self->flushed_seq = self->next_seq - 1;
    self->reloaded = self->count;
}


//  --------------------------------------------------------------------------
//  Create the ring, reload the log's tail, start the writer

lh_evring_t *
lh_evring_new (const lh_evring_opts_t *opts)
{
    assert (opts);
    lh_evring_t *self = (lh_evring_t *) zmalloc (sizeof (lh_evring_t));
    assert (self);
    self->opts = *opts;
    if (!self->opts.ring_max)
        self->opts.ring_max = 100000;
    if (!self->opts.ring_bytes)
        self->opts.ring_bytes = 256 * 1024 * 1024;
    if (!self->opts.body_max)
        self->opts.body_max = 65536;
    if (!self->opts.log_max_bytes)
        self->opts.log_max_bytes = 64 * 1024 * 1024;
    if (!self->opts.log_files)
        self->opts.log_files = 4;
    if (self->opts.flush_ms <= 0)
        self->opts.flush_ms = 200;
    if (!self->opts.buffer_max)
        self->opts.buffer_max = 16 * 1024 * 1024;
    if (!self->opts.topics_max)
        self->opts.topics_max = 1024;
    self->next_seq = 1;
    self->fd = -1;
    self->topics = zhashx_new ();
    zhashx_set_destructor (self->topics, s_count_destroy);
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->file_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->wake, &attr);
    pthread_condattr_destroy (&attr);
    if (opts->dir && *opts->dir) {
        self->dir = strdup (opts->dir);
        self->path = zsys_sprintf ("%s/%s", self->dir, S_LOG_FILE);
        self->opts.dir = self->dir;
        s_reload (self);
        pthread_mutex_lock (&self->file_lock);
        s_log_open (self);
        pthread_mutex_unlock (&self->file_lock);
        if (pthread_create (&self->writer, NULL, s_writer, self) == 0)
            self->writer_started = true;
        else
            lh_warn (S_NAME, NULL, "cannot start the event log writer: events are not logged");
    }
    else
        self->opts.dir = NULL;
    return self;
}


//  --------------------------------------------------------------------------
//  Flush, stop the writer, free everything; nulls the caller's pointer

void
lh_evring_destroy (lh_evring_t **self_p)
{
    assert (self_p);
    lh_evring_t *self = *self_p;
    if (self) {
        if (self->writer_started) {
            pthread_mutex_lock (&self->lock);
            self->stop = true;
            pthread_cond_signal (&self->wake);
            pthread_mutex_unlock (&self->lock);
            pthread_join (self->writer, NULL);
        }
        if (self->fd >= 0)
            close (self->fd);
        while (self->count)
            s_evict (self);
        free (self->ring);
        free (self->pending.data);
        zhashx_destroy (&self->topics);
        pthread_cond_destroy (&self->wake);
        pthread_mutex_destroy (&self->file_lock);
        pthread_mutex_destroy (&self->lock);
        free (self->path);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Self test: bounds and eviction, queries, bodies, the log (reload,
//  rotation, a torn line, a failing disk)

//  A query or stats reply, decoded; the caller destroys zone
static msgpack_object
s_test_unpack (lh_pack_t **pack_p, msgpack_zone *zone, char **data_p)
{
    size_t size;
    const void *data = lh_pack_data (*pack_p, &size);
    *data_p = (char *) malloc (size);
    memcpy (*data_p, data, size);
    lh_pack_destroy (pack_p);
    msgpack_object object;
    msgpack_zone_init (zone, 4096);
    assert (lh_msgpack_unpack (*data_p, size, &lh_limits_default, zone, &object) == 0);
    return object;
}

//  A counter of the stats
static uint64_t
s_test_stat (lh_evring_t *ring, const char *name)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_evring_stats (ring, pack);
    lh_pack_close (pack);
    msgpack_zone zone;
    char *data;
    msgpack_object stats = s_test_unpack (&pack, &zone, &data);
    uint64_t value = UINT64_MAX;
    lh_obj_uint (&stats, name, &value);
    msgpack_zone_destroy (&zone);
    free (data);
    return value;
}

//  Run a query; returns the seqs found as "4,5,6" (caller frees) and the
//  reply's next and truncated
static char *
s_test_query (lh_evring_t *ring, const lh_evquery_t *query, uint64_t *next, bool *truncated)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_evring_query (ring, query, pack);
    msgpack_zone zone;
    char *data;
    msgpack_object reply = s_test_unpack (&pack, &zone, &data);
    const msgpack_object *events = lh_obj_get (&reply, "events");
    assert (events && events->type == MSGPACK_OBJECT_ARRAY);
    zchunk_t *seqs = zchunk_new (NULL, 64);
    for (uint32_t index = 0; index < events->via.array.size; index++) {
        uint64_t seq;
        assert (lh_obj_uint (&events->via.array.ptr [index], "seq", &seq));
        char text [32];
        snprintf (text, sizeof (text), "%s%" PRIu64, index? ",": "", seq);
        zchunk_extend (seqs, text, strlen (text));
    }
    zchunk_extend (seqs, "", 1);
    if (next)
        assert (lh_obj_uint (&reply, "next", next));
    if (truncated)
        assert (lh_obj_bool (&reply, "truncated", truncated));
    char *result = strdup ((char *) zchunk_data (seqs));
    zchunk_destroy (&seqs);
    msgpack_zone_destroy (&zone);
    free (data);
    return result;
}

//  Append an event whose body is JSON text
static uint64_t
s_test_append (lh_evring_t *ring, uint64_t bseq, uint64_t time_us, const char *topic,
               const char *source, const char *json)
{
    zframe_t *body = json? lh_json_text_to_frame (json, strlen (json), NULL, NULL): NULL;
    assert (!json || body);
    uint64_t seq = lh_evring_append (ring, bseq, time_us, topic, strlen (topic), source,
                                     strlen (source), body? zframe_data (body): NULL,
                                     body? zframe_size (body): 0, NULL);
    zframe_destroy (&body);
    return seq;
}

void
lh_evring_test (bool verbose)
{
    printf (" * lh_evring: ");

    //  Times: RFC 3339 both ways
    uint64_t time_us;
    assert (lh_evring_time_parse ("2026-01-02T03:04:05Z", 20, &time_us) == 0);
    assert (time_us == 1767323045ULL * 1000000);
    char text [32];
    lh_evring_time_text (time_us + 42, text);
    assert (streq (text, "2026-01-02T03:04:05.000042Z"));
    assert (lh_evring_time_parse (text, strlen (text), &time_us) == 0 && time_us == 1767323045000042ULL);
    assert (lh_evring_time_parse ("2026-01-02T05:04:05.5+02:00", 27, &time_us) == 0
            && time_us == 1767323045500000ULL);
    const char *bad_times [] = { "", "2026", "2026-01-02", "2026-01-02T03:04:05", "2026-13-02T03:04:05Z",
                                 "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05Zx", "1969-12-31T23:59:59Z",
                                 "2026-01-02X03:04:05Z", "2026-01-02T03:04:05+0200" };
    for (size_t index = 0; index < sizeof (bad_times) / sizeof (bad_times [0]); index++)
        assert (lh_evring_time_parse (bad_times [index], strlen (bad_times [index]), &time_us) == -1);

    //  Clean text: control characters dropped, UTF-8 required, a cap in
    //  characters (never inside one)
    zchunk_t *clean = zchunk_new (NULL, 64);
    assert (lh_evring_clean_text ("a\x01" "b\tc\nd\x7f" "e\xc2\x85" "f", 12, false, 0, clean) == 0);
    assert (zchunk_size (clean) == 6 && memcmp (zchunk_data (clean), "abcdef", 6) == 0);
    zchunk_set (clean, NULL, 0);
    assert (lh_evring_clean_text ("a\tb\nc\r", 6, true, 0, clean) == 0);
    assert (zchunk_size (clean) == 5 && memcmp (zchunk_data (clean), "a\tb\nc", 5) == 0);
    zchunk_set (clean, NULL, 0);
    assert (lh_evring_clean_text ("\xc3\xa9\xc3\xa9\xc3\xa9", 6, false, 2, clean) == 0);
    assert (zchunk_size (clean) == 4);
    zchunk_set (clean, NULL, 0);
    assert (lh_evring_clean_text ("a\xff", 2, false, 0, clean) == -1);
    assert (lh_evring_clean_text ("\xc0\x80", 2, false, 0, clean) == -1);
    assert (lh_evring_clean_text ("\xed\xa0\x80", 3, false, 0, clean) == -1);
    zchunk_destroy (&clean);

    //  A ring of 5 without a log: the oldest go, counted
    lh_evring_opts_t opts = { .ring_max = 5, .body_max = 100 };
    lh_evring_t *ring = lh_evring_new (&opts);
    for (int index = 1; index <= 8; index++) {
        char body [32];
        snprintf (body, sizeof (body), "{\"n\": %d}", index);
        uint64_t seq = s_test_append (ring, 100 + index, 1000000 * (uint64_t) index,
                                      index % 2? "catalog.changed": "storage.put",
                                      index < 5? "catalogd-0": "storaged-1", body);
        assert (seq == (uint64_t) index);
    }
    assert (s_test_stat (ring, "ring_size") == 5 && s_test_stat (ring, "evicted") == 3);
    assert (s_test_stat (ring, "oldest") == 4 && s_test_stat (ring, "newest") == 8);
    assert (s_test_stat (ring, "received") == 8 && s_test_stat (ring, "logged") == 0);

    //  Pages: since, limit, next, truncated
    uint64_t next;
    bool truncated;
    lh_evquery_t query = { .limit = 2 };
    char *seqs = s_test_query (ring, &query, &next, &truncated);
    assert (streq (seqs, "4,5") && next == 5 && truncated);
    zstr_free (&seqs);
    query.since_seq = next;
    query.limit = 10;
    seqs = s_test_query (ring, &query, &next, &truncated);
    assert (streq (seqs, "6,7,8") && next == 8 && !truncated);
    zstr_free (&seqs);
    query.since_seq = next;
    seqs = s_test_query (ring, &query, &next, &truncated);
    assert (streq (seqs, "") && next == 8 && !truncated);
    zstr_free (&seqs);
    //  Filters: topic prefix, exact source, broker seq, time
    query = (lh_evquery_t) { .limit = 10, .type = "catalog.", .type_size = 8 };
    seqs = s_test_query (ring, &query, &next, NULL);
    assert (streq (seqs, "5,7") && next == 8);
    zstr_free (&seqs);
    query = (lh_evquery_t) { .limit = 10, .source = "catalogd-0", .source_size = 10 };
    seqs = s_test_query (ring, &query, NULL, NULL);
    assert (streq (seqs, "4"));
    zstr_free (&seqs);
    query = (lh_evquery_t) { .limit = 10, .source = "catalogd", .source_size = 8 };
    seqs = s_test_query (ring, &query, NULL, NULL);
    assert (streq (seqs, ""));
    zstr_free (&seqs);
    query = (lh_evquery_t) { .limit = 10, .since_bseq = 106 };
    seqs = s_test_query (ring, &query, NULL, NULL);
    assert (streq (seqs, "7,8"));
    zstr_free (&seqs);
    query = (lh_evquery_t) { .limit = 10, .since_time_us = 6000000 };
    seqs = s_test_query (ring, &query, NULL, NULL);
    assert (streq (seqs, "6,7,8"));
    zstr_free (&seqs);
    //  A filtered page stops at the limit and resumes after it
    query = (lh_evquery_t) { .limit = 1, .type = "storage.", .type_size = 8 };
    seqs = s_test_query (ring, &query, &next, &truncated);
    assert (streq (seqs, "4") && next == 4 && truncated);
    zstr_free (&seqs);
    query.since_seq = next;
    seqs = s_test_query (ring, &query, &next, &truncated);
    assert (streq (seqs, "6") && next == 6 && truncated);
    zstr_free (&seqs);

    //  Bodies: none is null, too large is omitted with its size, JSON
    //  that cannot be is kept as bin; topic and source made safe
    s_test_append (ring, 0, 1, "t", "s", NULL);
    uint8_t large [200];
    memset (large, 0xa0, sizeof (large));
    large [0] = 0xc4, large [1] = 198;          //  bin of 198 bytes
    lh_evring_append (ring, 0, 1, "t\nx", 3, "s\xff", 2, large, sizeof (large), NULL);
    lh_evring_append (ring, 0, 1, "t", 1, "s", 1, "\x81\x01\x02", 3, NULL);
    lh_pack_t *pack = lh_pack_new ();
    query = (lh_evquery_t) { .limit = 10, .since_seq = 8 };
    lh_evring_query (ring, &query, pack);
    msgpack_zone zone;
    char *data;
    msgpack_object reply = s_test_unpack (&pack, &zone, &data);
    const msgpack_object *events = lh_obj_get (&reply, "events");
    assert (events->via.array.size == 3);
    assert (lh_obj_get (&events->via.array.ptr [0], "body")->type == MSGPACK_OBJECT_NIL);
    assert (!lh_obj_get (&events->via.array.ptr [0], "body_omitted"));
    const char *string;
    size_t size;
    assert (lh_obj_str (&events->via.array.ptr [1], "topic", &string, &size) && size == 3
            && memcmp (string, "t?x", 3) == 0);
    assert (lh_obj_str (&events->via.array.ptr [1], "source", &string, &size) && size == 2
            && memcmp (string, "s?", 2) == 0);
    uint64_t omitted;
    assert (lh_obj_uint (&events->via.array.ptr [1], "body_omitted", &omitted) && omitted == 200);
    assert (lh_obj_get (&events->via.array.ptr [2], "body")->type == MSGPACK_OBJECT_BIN);
    msgpack_zone_destroy (&zone);
    free (data);
    assert (s_test_stat (ring, "bodies_omitted") == 1 && s_test_stat (ring, "bodies_binary") == 1);
    lh_evring_destroy (&ring);

    //  The byte bound evicts too
    opts = (lh_evring_opts_t) { .ring_max = 1000, .ring_bytes = 2000 };
    ring = lh_evring_new (&opts);
    for (int index = 0; index < 100; index++)
        s_test_append (ring, 0, 1, "bytes", "test", "{\"pad\": \"0123456789012345678901234567890123456789\"}");
    assert (s_test_stat (ring, "ring_bytes") <= 2000 && s_test_stat (ring, "ring_size") < 100);
    assert (s_test_stat (ring, "evicted") + s_test_stat (ring, "ring_size") == 100);
    lh_evring_destroy (&ring);

    //  The log: written, then read back after a restart with the same seqs
    char dir [] = "/tmp/lh_evring.XXXXXX";
    assert (mkdtemp (dir));
    char *log_dir = zsys_sprintf ("%s/log", dir);
    char *log_path = zsys_sprintf ("%s/events.jsonl", log_dir);
    opts = (lh_evring_opts_t) { .ring_max = 100, .dir = log_dir, .flush_ms = 10 };
    ring = lh_evring_new (&opts);
    for (int index = 1; index <= 50; index++)
        s_test_append (ring, (uint64_t) index, lh_evring_now_us (), "catalog.changed", "catalogd-0",
                       "{\"op\": \"register\", \"name\": \"w\\\"x\", \"bin\": {\"$base64\": \"AAE=\"}}");
    assert (lh_evring_flush (ring) == 0);
    assert (lh_evring_flushed_seq (ring) == 50 && s_test_stat (ring, "logged") == 50);
    //  The writer flushes on its own too
    s_test_append (ring, 51, lh_evring_now_us (), "x", "y", "[1, 2.5, null, true]");
    int64_t until = zclock_mono () + 5000;
    while (lh_evring_flushed_seq (ring) < 51 && zclock_mono () < until)
        zclock_sleep (5);
    assert (lh_evring_flushed_seq (ring) == 51);
    lh_evring_destroy (&ring);
    ring = lh_evring_new (&opts);
    assert (s_test_stat (ring, "ring_size") == 51 && s_test_stat (ring, "reloaded") == 51);
    assert (s_test_stat (ring, "reload_skipped") == 0 && s_test_stat (ring, "flushed_seq") == 51);
    pack = lh_pack_new ();
    query = (lh_evquery_t) { .limit = 1, .since_seq = 49 };
    lh_evring_query (ring, &query, pack);
    reply = s_test_unpack (&pack, &zone, &data);
    events = lh_obj_get (&reply, "events");
    uint64_t bseq;
    assert (lh_obj_uint (&events->via.array.ptr [0], "bseq", &bseq) && bseq == 50);
    const msgpack_object *body = lh_obj_get (&events->via.array.ptr [0], "body");
    assert (lh_obj_str (body, "name", &string, &size) && size == 3 && memcmp (string, "w\"x", 3) == 0);
    assert (lh_obj_get (body, "bin")->type == MSGPACK_OBJECT_BIN);
    msgpack_zone_destroy (&zone);
    free (data);
    assert (s_test_append (ring, 0, 1, "after", "restart", NULL) == 52);
    lh_evring_destroy (&ring);

    //  A torn last line (kill -9 in the middle of a write) is cut and
    //  counted; what follows is written on a line of its own
    FILE *file = fopen (log_path, "ab");
    assert (file);
    fputs ("{\"seq\":53,\"bseq\":0,\"ti", file);
    fclose (file);
    ring = lh_evring_new (&opts);
    assert (s_test_stat (ring, "ring_size") == 52 && s_test_stat (ring, "reload_skipped") == 1);
    assert (s_test_append (ring, 0, 1, "after", "torn", "{}") == 53);
    lh_evring_destroy (&ring);
    ring = lh_evring_new (&opts);
    assert (s_test_stat (ring, "ring_size") == 53 && s_test_stat (ring, "reload_skipped") == 0);
    //  A ring smaller than the log reloads the newest
    lh_evring_destroy (&ring);
    opts.ring_max = 10;
    ring = lh_evring_new (&opts);
    assert (s_test_stat (ring, "ring_size") == 10 && s_test_stat (ring, "oldest") == 44
            && s_test_stat (ring, "newest") == 53);
    lh_evring_destroy (&ring);

    //  Rotation by size: at most log_files rotated files, and the reload
    //  reads back through them
    opts = (lh_evring_opts_t) { .ring_max = 1000, .dir = log_dir, .flush_ms = 1000,
                                .log_max_bytes = 4000, .log_files = 2 };
    ring = lh_evring_new (&opts);
    for (int batch = 0; batch < 20; batch++) {
        for (int index = 0; index < 10; index++)
            s_test_append (ring, 0, lh_evring_now_us (), "rotate", "test", "{\"pad\": \"xxxxxxxxxxxxxxxxxxxx\"}");
        assert (lh_evring_flush (ring) == 0);
    }
    assert (s_test_stat (ring, "log_rotations") >= 3);
    char *rotated = zsys_sprintf ("%s.2", log_path);
    assert (zsys_file_exists (rotated));
    zstr_free (&rotated);
    rotated = zsys_sprintf ("%s.3", log_path);
    assert (!zsys_file_exists (rotated));
    zstr_free (&rotated);
    uint64_t newest = s_test_stat (ring, "newest");
    lh_evring_destroy (&ring);
    ring = lh_evring_new (&opts);
    assert (s_test_stat (ring, "newest") == newest);
    size_t reloaded = s_test_stat (ring, "ring_size");
    assert (reloaded > 30 && reloaded < newest);
    //  Seqs are contiguous in what was reloaded
    assert (s_test_stat (ring, "newest") - s_test_stat (ring, "oldest") + 1 == reloaded);
    lh_evring_destroy (&ring);

    //  A disk that fails (the log is /dev/full): counted, never fatal
    char *full_dir = zsys_sprintf ("%s/full", dir);
    assert (zsys_dir_create ("%s", full_dir) == 0);
    char *full_path = zsys_sprintf ("%s/events.jsonl", full_dir);
    assert (symlink ("/dev/full", full_path) == 0);
    opts = (lh_evring_opts_t) { .ring_max = 100, .dir = full_dir, .flush_ms = 10000 };
    ring = lh_evring_new (&opts);
    s_test_append (ring, 0, 1, "full", "disk", "{}");
    assert (lh_evring_flush (ring) == -1);
    assert (s_test_stat (ring, "log_errors") == 1 && s_test_stat (ring, "log_lost") == 1);
    assert (s_test_append (ring, 0, 1, "still", "going", "{}") == 2);
    assert (s_test_stat (ring, "ring_size") == 2);
    lh_evring_destroy (&ring);
    unlink (full_path);
    zstr_free (&full_path);
    zstr_free (&full_dir);

    if (verbose)
        printf ("(log in %s) ", log_dir);
    zsys_dir_delete ("%s", dir);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert (system (command) == 0);
    zstr_free (&command);
    zstr_free (&log_path);
    zstr_free (&log_dir);
    printf ("OK\n");
}
