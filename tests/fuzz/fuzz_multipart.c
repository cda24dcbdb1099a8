/*  =========================================================================
    fuzz_multipart - libFuzzer target for the gateway's multipart/form-data
    parser (gateway/lh_multipart.c)

    An input is a Content-Type value, a newline, then the body. The
    boundary is read from the Content-Type (lh_multipart_boundary); when
    there is one, the body is parsed whole and again in chunks of sizes
    derived from the input (tests/fuzz/fuzz_chunks.h), with small limits:
    the events (part begins with name and filename, the content bytes,
    part ends), the result and the error sentence must not depend on where
    the chunks were cut. Events must nest (begin, data, end), data never
    comes empty, names and filenames stay within their limits, a refused
    body says why, and a parse stopped by the callback stays stopped.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/multipart.
    =========================================================================
*/

#include "lh_multipart.h"
#include "fuzz_chunks.h"

static const lh_multipart_limits_t s_limits = {
    .header_max = 256, .name_max = 16, .filename_max = 32, .parts_max = 8
};

//  What one parse delivered
typedef struct {
    uint64_t hash;                      //  FNV-1a over the event stream
    bool open;                          //  a part is open
    size_t parts;                       //  parts begun
    size_t events;                      //  events seen
    size_t stop_at;                     //  stop at this event (SIZE_MAX: never)
} s_seen_t;

static void
s_mix (s_seen_t *seen, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    for (size_t index = 0; index < size; index++)
        seen->hash = (seen->hash ^ bytes [index]) * 1099511628211ULL;
}

static int
s_event (void *arg, lh_multipart_event_t event, const lh_multipart_part_t *part,
         const char *data, size_t size)
{
    s_seen_t *seen = (s_seen_t *) arg;
    assert (part && part->name && strlen (part->name) <= s_limits.name_max);
    assert (!part->filename || strlen (part->filename) <= s_limits.filename_max);
    if (event == LH_MULTIPART_BEGIN) {
        assert (!seen->open && data == NULL && size == 0);
        assert (part->index == seen->parts);
        seen->open = true;
        seen->parts++;
        //  Begin and end are marked by bytes content cannot hold in
        //  that position: a length-prefixed record
        uint8_t mark = 'B';
        s_mix (seen, &mark, 1);
        size_t name_size = strlen (part->name);
        s_mix (seen, &name_size, sizeof (name_size));
        s_mix (seen, part->name, name_size);
        size_t filename_size = part->filename? strlen (part->filename) + 1: 0;
        s_mix (seen, &filename_size, sizeof (filename_size));
        if (part->filename)
            s_mix (seen, part->filename, filename_size - 1);
    }
    else
    if (event == LH_MULTIPART_DATA) {
        assert (seen->open && data && size > 0);
        //  Content is hashed as a stream: however it was cut, the same
        s_mix (seen, data, size);
    }
    else {
        assert (event == LH_MULTIPART_END && seen->open && data == NULL && size == 0);
        seen->open = false;
        uint8_t mark = 'E';
        s_mix (seen, &mark, 1);
    }
    return seen->events++ == seen->stop_at? -1: 0;
}

//  Parse body whole (chunked false) or in chunks; returns the result
static int
s_parse (const char *boundary, const uint8_t *body, size_t size, bool chunked,
         s_seen_t *seen, char *error, size_t error_size)
{
    lh_multipart_t *form = lh_multipart_new (boundary, &s_limits);
    fuzz_chunks_t chunks;
    fuzz_chunks_init (&chunks, body, size);
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0; ) {
        size_t take = chunked? fuzz_chunks_next (&chunks, size - at): size;
        rc = lh_multipart_feed (form, body + at, take, s_event, seen);
        at += take;
    }
    if (rc == 0)
        rc = lh_multipart_finish (form);
    assert (rc == 0 || rc == -1 || rc == -2);
    assert ((rc == -2) == (*lh_multipart_error (form) != 0));
    assert (lh_multipart_parts (form) == seen->parts);
    if (rc == 0)
        assert (!seen->open);
    if (rc == -1) {
        //  Stopped stays stopped
        assert (lh_multipart_feed (form, "--", 2, s_event, seen) == -1);
        assert (lh_multipart_finish (form) == -1);
    }
    snprintf (error, error_size, "%s", lh_multipart_error (form));
    lh_multipart_destroy (&form);
    assert (form == NULL);
    return rc;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const uint8_t *newline = (const uint8_t *) memchr (data, '\n', size);
    if (!newline)
        return 0;
    size_t type_size = (size_t) (newline - data);
    char *content_type = (char *) malloc (type_size + 1);
    assert (content_type);
    memcpy (content_type, data, type_size);
    content_type [type_size] = 0;
    char boundary [LH_MULTIPART_BOUNDARY_MAX + 1];
    const char *reason = NULL;
    int rc = lh_multipart_boundary (content_type, boundary, sizeof (boundary), &reason);
    free (content_type);
    if (rc) {
        assert (rc == -1 && reason && *reason);
        return 0;
    }
    assert (*boundary && strlen (boundary) <= LH_MULTIPART_BOUNDARY_MAX);
    assert (!strchr (boundary, '\r') && !strchr (boundary, '\n'));

    const uint8_t *body = newline + 1;
    size_t body_size = size - type_size - 1;
    s_seen_t whole = { 14695981039346656037ULL, false, 0, 0, SIZE_MAX };
    s_seen_t cut = whole;
    char whole_error [256], cut_error [256];
    int whole_rc = s_parse (boundary, body, body_size, false, &whole, whole_error, sizeof (whole_error));
    int cut_rc = s_parse (boundary, body, body_size, true, &cut, cut_error, sizeof (cut_error));
    assert (whole_rc == cut_rc && whole_rc != -1);
    assert (streq (whole_error, cut_error));
    assert (whole.parts == cut.parts && whole.hash == cut.hash);

    //  Now and then the callback stops the parse part-way (where depends
    //  on the cuts: only the shapes are checked)
    fuzz_chunks_t chunks;
    fuzz_chunks_init (&chunks, data, size);
    if (chunks.state % 4 == 0 && whole.events > 0) {
        s_seen_t stopped = { 14695981039346656037ULL, false, 0, 0,
                             (size_t) ((chunks.state >> 8) % whole.events) };
        int rc = s_parse (boundary, body, body_size, true, &stopped, cut_error, sizeof (cut_error));
        assert (rc == -1 || rc == -2);
    }
    return 0;
}
