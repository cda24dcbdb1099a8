/*  =========================================================================
    lh_gw_download - GET /v1/storage/KEY streamed out of storaged; see
    lh_gw_download.h
    =========================================================================
*/

#include "lh_gw_download.h"
#include "lh_storage.h"
#include "lh_log.h"
#include <jansson.h>
#include <inttypes.h>
#include <ctype.h>

#define S_ACTOR         "gateway"
#define S_BLOCK         (64 * 1024)     //  bytes libmicrohttpd asks of a stream at a time
#define S_RANGE_SHOWN   40              //  bytes of a Range header a 416 quotes

struct _lh_gw_download_t {
    lh_storage_t *storage;              //  storaged, over the thread's client
    char *key;                          //  object key
    char trace [LH_TRACE_SIZE + 1];     //  trace id, for the log
    size_t part_size;                   //  bytes asked per get
    unsigned status;                    //  what open answered, 0 before
    char range [S_RANGE_SHOWN + 1];     //  the Range header's start, for a 416
    char etag [LH_STORAGE_ETAG_MAX + 1];    //  ETag of the first range
    uint64_t size;                      //  object size
    bool ranged;                        //  one byte range is sent (206)
    uint64_t first;                     //  its first byte
    uint64_t last;                      //  its last byte
    uint64_t base;                      //  first byte sent
    uint64_t length;                    //  bytes sent
    uint64_t offset;                    //  offset of the range held
    const uint8_t *data;                //  its bytes (in the storage client's last reply)
    size_t data_size;                   //  how many
};


//  --------------------------------------------------------------------------
//  Parse a Range header of one byte range: "bytes=FIRST-LAST", "bytes=
//  FIRST-" or "bytes=-SUFFIX". Returns 0 with *first and *last (UINT64_MAX:
//  to the end) or *suffix set (nonzero *suffix: the last that many bytes),
//  -1 for anything else (several ranges, other units, bad syntax), which
//  is ignored: the whole object is sent (RFC 9110 allows that).

static int
s_range_parse (const char *text, uint64_t *first, uint64_t *last, uint64_t *suffix)
{
    *first = 0;
    *last = UINT64_MAX;
    *suffix = 0;
    if (strncmp (text, "bytes=", 6) != 0 || strchr (text, ','))
        return -1;
    const char *cursor = text + 6;
    char *end;
    if (*cursor == '-') {
        if (!isdigit ((unsigned char) cursor [1]))
            return -1;
        errno = 0;
        *suffix = strtoull (cursor + 1, &end, 10);
        return errno || *end || *suffix == 0? -1: 0;
    }
    if (!isdigit ((unsigned char) *cursor))
        return -1;
    errno = 0;
    *first = strtoull (cursor, &end, 10);
    if (errno || *end != '-')
        return -1;
    cursor = end + 1;
    if (*cursor == 0)
        return 0;
    if (!isdigit ((unsigned char) *cursor))
        return -1;
    *last = strtoull (cursor, &end, 10);
    return errno || *end || *last < *first? -1: 0;
}


//  --------------------------------------------------------------------------
//  Create a download of key

lh_gw_download_t *
lh_gw_download_new (lh_client_t *client, const char *key, const char *trace,
                    uint32_t timeout_ms, size_t part_size)
{
    assert (client && key && trace && part_size);
    lh_gw_download_t *self = (lh_gw_download_t *) zmalloc (sizeof (lh_gw_download_t));
    assert (self);
    self->storage = lh_storage_new (client, trace, timeout_ms);
    self->key = strdup (key);
    assert (self->key);
    snprintf (self->trace, sizeof (self->trace), "%s", trace);
    self->part_size = part_size;
    return self;
}

void
lh_gw_download_set_span (lh_gw_download_t *self, const char *span)
{
    assert (self);
    lh_storage_set_span (self->storage, span);
}


//  --------------------------------------------------------------------------
//  Destroy a download

void
lh_gw_download_destroy (lh_gw_download_t **self_p)
{
    assert (self_p);
    lh_gw_download_t *self = *self_p;
    if (self) {
        lh_storage_destroy (&self->storage);
        free (self->key);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  One get at offset, held as the current range. Returns storaged's
//  status; info gets the object's size and ETag.

static uint32_t
s_get (lh_gw_download_t *self, uint64_t offset, lh_storage_info_t *info)
{
    const void *data;
    size_t size;
    uint32_t status = lh_storage_get (self->storage, self->key, offset, self->part_size,
                                      info, &data, &size);
    self->offset = offset;
    self->data = status == LH_ST_OK? (const uint8_t *) data: NULL;
    self->data_size = status == LH_ST_OK? size: 0;
    return status;
}


//  --------------------------------------------------------------------------
//  Read the first range for the Range header

unsigned
lh_gw_download_open (lh_gw_download_t *self, const char *range)
{
    assert (self && !self->status);
    uint64_t first = 0, last = UINT64_MAX, suffix = 0;
    self->ranged = range && s_range_parse (range, &first, &last, &suffix) == 0;
    if (range)
        snprintf (self->range, sizeof (self->range), "%s", range);
    //  The first get: at the range's start (a suffix needs the size first)
    lh_storage_info_t info;
    uint32_t status = s_get (self, suffix? 0: first, &info);
    if (self->ranged && status == LH_ST_BAD_REQUEST) {
        //  Past the end: storaged says bad_range; the size makes the 416
        status = s_get (self, 0, &info);
        if (status == LH_ST_OK) {
            self->size = info.size;
            return self->status = 416;
        }
    }
    if (status != LH_ST_OK)
        return self->status = status;
    snprintf (self->etag, sizeof (self->etag), "%s", info.etag);
    self->size = info.size;
    if (self->ranged) {
        if (suffix)
            first = suffix < self->size? self->size - suffix: 0;
        if (first >= self->size) {
            self->etag [0] = 0;
            return self->status = 416;
        }
        if (last >= self->size)
            last = self->size - 1;
        self->first = self->base = first;
        self->last = last;
        self->length = last - first + 1;
        return self->status = 206;
    }
    self->length = self->size;
    return self->status = LH_ST_OK;
}


//  --------------------------------------------------------------------------
//  Accessors

const char *
lh_gw_download_etag (lh_gw_download_t *self)
{
    assert (self);
    return self->status == LH_ST_OK || self->status == 206? self->etag: "";
}

lh_reply_t *
lh_gw_download_reply (lh_gw_download_t *self)
{
    assert (self);
    return lh_storage_reply (self->storage);
}


//  --------------------------------------------------------------------------
//  libmicrohttpd wants bytes at pos: from the range held, or the next get

static ssize_t
s_read (void *cls, uint64_t pos, char *buf, size_t max)
{
    lh_gw_download_t *self = (lh_gw_download_t *) cls;
    if (pos >= self->length)
        return MHD_CONTENT_READER_END_OF_STREAM;
    pos += self->base;                  //  position in the object
    if (pos < self->offset || pos >= self->offset + self->data_size) {
        lh_storage_info_t info;
        uint32_t status = s_get (self, pos, &info);
        if (status != LH_ST_OK || info.size != self->size || !streq (info.etag, self->etag)
        ||  self->data_size == 0) {
            const char *reason = lh_storage_reason (self->storage);
            lh_warn (S_ACTOR, self->trace, "GET %s cut at byte %" PRIu64 ": %s", self->key, pos,
                     status != LH_ST_OK? (*reason? reason: "storaged failed")
                                       : "the object changed or ended while it was read");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t have = (size_t) (self->offset + self->data_size - pos);
    if (have > self->base + self->length - pos)
        have = (size_t) (self->base + self->length - pos);
    size_t take = have < max? have: max;
    memcpy (buf, self->data + (pos - self->offset), take);
    return (ssize_t) take;
}


//  --------------------------------------------------------------------------
//  The response is done with the download

static void
s_free (void *cls)
{
    lh_gw_download_t *self = (lh_gw_download_t *) cls;
    lh_gw_download_destroy (&self);
}


//  --------------------------------------------------------------------------
//  416: the SPEC error body, and Content-Range naming the size

static struct MHD_Response *
s_unsatisfiable (lh_gw_download_t *self, size_t *size)
{
    char reason [160];
    snprintf (reason, sizeof (reason), "the range '%s' is outside the object, "
              "which has %" PRIu64 " bytes", self->range, self->size);
    json_t *error = json_object ();
    json_object_set_new (error, "kind", json_string ("range_not_satisfiable"));
    json_object_set_new (error, "reason", json_string (reason));
    json_t *body = json_object ();
    json_object_set_new (body, "error", error);
    char *text = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    assert (text);
    *size = strlen (text);
    struct MHD_Response *response = MHD_create_response_from_buffer (
        *size, text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free (text);
        return NULL;
    }
    char content_range [48];
    snprintf (content_range, sizeof (content_range), "bytes */%" PRIu64, self->size);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    return response;
}


//  --------------------------------------------------------------------------
//  The response of an opened download; takes the download

struct MHD_Response *
lh_gw_download_response (lh_gw_download_t **self_p, size_t *size, const char **content_type)
{
    assert (self_p && *self_p && size && content_type);
    lh_gw_download_t *self = *self_p;
    *self_p = NULL;
    assert (self->status == LH_ST_OK || self->status == 206 || self->status == 416);
    struct MHD_Response *response;
    if (self->status == 416) {
        *content_type = "application/json";
        response = s_unsatisfiable (self, size);
        lh_gw_download_destroy (&self);
        return response;
    }
    *content_type = "application/octet-stream";
    *size = (size_t) self->length;
    bool ranged = self->ranged;
    char content_range [80];
    snprintf (content_range, sizeof (content_range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
              self->first, self->last, self->size);
    response = MHD_create_response_from_callback (self->length, S_BLOCK, s_read, self, s_free);
    if (!response) {
        lh_gw_download_destroy (&self);
        return NULL;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (ranged)
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    return response;
}


//  --------------------------------------------------------------------------
//  Self test: Range parsing (the streaming itself is test_http_storage's)

void
lh_gw_download_test (bool verbose)
{
    printf (" * lh_gw_download: ");
    struct {
        const char *text;
        int rc;
        uint64_t first, last, suffix;
    } cases [] = {
        { "bytes=0-99", 0, 0, 99, 0 },
        { "bytes=100-", 0, 100, UINT64_MAX, 0 },
        { "bytes=-500", 0, 0, UINT64_MAX, 500 },
        { "bytes=7-7", 0, 7, 7, 0 },
        { "bytes=9-3", -1, 0, 0, 0 },
        { "bytes=-0", -1, 0, 0, 0 },
        { "bytes=-", -1, 0, 0, 0 },
        { "bytes=0-1,5-6", -1, 0, 0, 0 },
        { "items=0-1", -1, 0, 0, 0 },
        { "bytes=x-1", -1, 0, 0, 0 },
        { "bytes=1-x", -1, 0, 0, 0 },
        { "bytes=1", -1, 0, 0, 0 },
        { "bytes=99999999999999999999999-", -1, 0, 0, 0 },
        { "", -1, 0, 0, 0 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        uint64_t first, last, suffix;
        int rc = s_range_parse (cases [index].text, &first, &last, &suffix);
        if (verbose)
            printf ("\n   '%s' -> %d", cases [index].text, rc);
        assert (rc == cases [index].rc);
        if (rc == 0)
            assert (first == cases [index].first && last == cases [index].last
                    && suffix == cases [index].suffix);
    }
    printf ("OK\n");
}
