/*  =========================================================================
    lh_gw_download - the gateway's GET /v1/storage/KEY: an object streamed
    out of storaged, whole or one byte range

    The first range is read from storaged when the download opens, so its
    errors are the answer; the rest is read in ranges of part_size as
    libmicrohttpd asks for bytes, on the connection's HTTP thread and that
    thread's bus client (through the typed storage client, lh_storage.h).
    One byte range (Range: bytes=FIRST-LAST, FIRST-, -SUFFIX) is answered
    206 with Content-Range, a range starting past the end 416; anything
    else in Range (several ranges, other units) is ignored and the whole
    object sent (RFC 9110 allows that). An object replaced while it is
    read cuts the response (its ETag is checked on every range).

        lh_gw_download_t *download = lh_gw_download_new (client, key, trace,
                                                         timeout_ms, part_size);
        unsigned status = lh_gw_download_open (download, range_header);
        if (status == 200 || status == 206 || status == 416) {
            size_t size;
            const char *type;
            ...lh_gw_download_etag (download)...     //  before the hand-over
            struct MHD_Response *response =
                lh_gw_download_response (&download, &size, &type);
            ...queue it with status...
        }
        else {
            ...answer lh_gw_download_reply (download)...
            lh_gw_download_destroy (&download);
        }
    =========================================================================
*/

#ifndef LH_GW_DOWNLOAD_H_INCLUDED
#define LH_GW_DOWNLOAD_H_INCLUDED

#include "lh_client.h"
#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_gw_download_t lh_gw_download_t;

//  Create a download of key on client (borrowed: the HTTP thread's, which
//  must outlive the response), each storaged call carrying trace and
//  capped at timeout_ms, ranges of part_size bytes
lh_gw_download_t *
    lh_gw_download_new (lh_client_t *client, const char *key, const char *trace,
                        uint32_t timeout_ms, size_t part_size);

//  Make the storaged calls children of the request's span (16 hex; NULL
//  or "": none)
void
    lh_gw_download_set_span (lh_gw_download_t *self, const char *span);

//  Destroy a download that was not handed to a response; nulls the
//  caller's pointer
void
    lh_gw_download_destroy (lh_gw_download_t **self_p);

//  Read the first range for the Range header (NULL: none). Returns the
//  HTTP status to answer: 200 or 206 (the object's bytes) or 416 (the
//  range is outside the object: an error body with Content-Range), each
//  made by lh_gw_download_response; any other status is a failure, whose
//  reply (storaged's, or one made here) is lh_gw_download_reply.
unsigned
    lh_gw_download_open (lh_gw_download_t *self, const char *range);

//  After a 200 or 206: the object's ETag (hex, no quotes); "" otherwise
const char *
    lh_gw_download_etag (lh_gw_download_t *self);

//  After a failed open: the reply to answer with (borrowed)
lh_reply_t *
    lh_gw_download_reply (lh_gw_download_t *self);

//  The response of an opened download (200, 206 or 416), with *size its
//  body bytes and *content_type its type. The response takes the download
//  (freed when libmicrohttpd is done with it): nulls the caller's pointer.
//  NULL if libmicrohttpd could not make one (the download is destroyed).
struct MHD_Response *
    lh_gw_download_response (lh_gw_download_t **self_p, size_t *size,
                             const char **content_type);

//  Self test of this class (Range parsing)
void
    lh_gw_download_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
