/*  =========================================================================
    fuzz_s3_parse - libFuzzer target for everything the s3 backend reads
    from an S3 store's answers (actors/storaged/lh_s3_parse.c)

    Every input goes through every parser, as the backend calls them: as a
    body (ListObjectsV2 page, error body, InitiateMultipartUpload and
    CompleteMultipartUpload answers, the XML scanner and character-data
    decoder with small and large room), as response header lines (each
    line of the input), as dates (ISO 8601 and HTTP dates; an HTTP date we
    accept must mean the same instant to libcurl's curl_getdate), as a
    url-encoded key, a reason to scrub and an endpoint setting. Outputs
    must stay within their buffers and keep their documented shapes.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/s3_parse.
    =========================================================================
*/

#include "lh_s3_parse.h"
#include <curl/curl.h>

//  A list entry: the shapes the backend relies on
static int
s_entry (const char *key, uint64_t size, const char *etag, int64_t mtime_ms, void *arg)
{
    size_t *count = (size_t *) arg;
    assert (strlen (key) <= LH_S3_FIELD_MAX * 3);
    assert (strlen (etag) < LH_S3_ETAG_MAX);
    (*count)++;
    return *count == 1000;              //  a page stops at its limit
}

//  The body parsers
static void
s_bodies (const char *text, size_t size)
{
    size_t count = 0;
    bool truncated;
    char *next = (char *) "unset";
    int rc = lh_s3_list_parse (text, size, s_entry, &count, &truncated, &next);
    assert (rc == 0 || (rc == -1 && next == NULL));
    if (next)
        assert (strlen (next) <= LH_S3_FIELD_MAX * 3);
    zstr_free (&next);

    char code [64], message [256];
    lh_s3_error_parse (text, size, code, sizeof (code), message, sizeof (message));
    assert (strlen (code) < sizeof (code) && strlen (message) < sizeof (message));
    uint32_t status;
    const char *kind = lh_s3_error_map (400, code, &status);
    assert (kind && status >= 400 && status < 600);
    lh_s3_xml_error (text, size);

    char upload_id [1024];
    if (lh_s3_upload_id_parse (text, size, upload_id, sizeof (upload_id)) == 0)
        assert (*upload_id && strlen (upload_id) < sizeof (upload_id));
    char etag [LH_S3_ETAG_MAX];
    lh_s3_complete_etag (text, size, etag, sizeof (etag));
    assert (strlen (etag) < sizeof (etag));

    //  The scanner over every element name it may be asked for, nested
    //  once, the inner text decoded with little and much room
    static const char *names [] = { "ListBucketResult", "Contents", "Key", "Error", "ETag", "A" };
    for (size_t index = 0; index < sizeof (names) / sizeof (names [0]); index++) {
        size_t from = 0, rounds = 0;
        const char *inner;
        size_t inner_size;
        while (rounds++ < 64 && lh_s3_xml_find (text, size, &from, names [index], &inner, &inner_size)) {
            assert (inner >= text && inner + inner_size <= text + size && from <= size);
            char small [8], large [4096];
            ssize_t got = lh_s3_xml_text (inner, inner_size, small, sizeof (small));
            assert (got < (ssize_t) sizeof (small));
            got = lh_s3_xml_text (inner, inner_size, large, sizeof (large));
            assert (got < (ssize_t) sizeof (large));
            if (got >= 0)
                assert (large [got] == 0);
        }
    }
}

//  Each line as a response header
static void
s_headers (const char *text, size_t size)
{
    lh_s3_head_t head;
    lh_s3_head_reset (&head);
    const char *line = text;
    const char *end = text + size;
    while (line < end) {
        const char *eol = (const char *) memchr (line, '\n', (size_t) (end - line));
        size_t line_size = eol? (size_t) (eol - line) + 1: (size_t) (end - line);
        lh_s3_head_parse (&head, line, line_size);
        assert (strlen (head.etag) < sizeof (head.etag));
        assert (strlen (head.sha256) < sizeof (head.sha256));
        line += line_size;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    s_bodies (text, size);
    s_headers (text, size);

    //  The parsers of C strings get the input up to its first NUL
    char *string = (char *) malloc (size + 1);
    assert (string);
    memcpy (string, data, size);
    string [size] = 0;
    size_t length = strlen (string);

    lh_s3_iso8601_ms (string);
    int64_t seconds = lh_s3_http_date (text, size);
    assert (seconds >= -1);
    if (seconds >= 0) {
        //  What we accept, libcurl reads as the same instant
        assert (length == size);
        assert ((int64_t) curl_getdate (string, NULL) == seconds);
    }

    char *copy = strdup (string);
    assert (copy);
    if (lh_s3_url_decode (copy) == 0)
        assert (strlen (copy) <= length);
    free (copy);

    copy = strdup (string);
    assert (copy);
    const char *secrets [] = { "AKIDSECRETID", "verysecretkey", NULL, "abc" };
    lh_s3_scrub (copy, secrets, 4);
    assert (strlen (copy) == length);
    assert (!strstr (copy, "AKIDSECRETID") && !strstr (copy, "verysecretkey"));
    for (char *scan = copy; *scan; scan++)
        assert ((unsigned char) *scan >= 0x20 && *scan != 0x7f);
    free (copy);

    char *unquoted = (char *) malloc (size + 1);
    assert (unquoted);
    lh_s3_unquote (text, size, unquoted, size + 1);
    free (unquoted);

    static const char *styles [] = { "path", "virtual" };
    for (size_t index = 0; index < 2; index++) {
        char *base, *host, *prefix;
        char reason [320];
        if (lh_s3_endpoint_parse (string, styles [index], "bucket", &base, &host, &prefix,
                                  reason, sizeof (reason)) == 0) {
            assert (strncmp (base, "http", 4) == 0 && *host);
            assert (strstr (base, host));
            free (base);
            free (host);
            free (prefix);
        }
        else
            assert (*reason && !base && !host && !prefix);
    }
    free (string);
    return 0;
}
