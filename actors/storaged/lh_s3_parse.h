/*  =========================================================================
    lh_s3_parse - reading what an S3 store answers, for the s3 backend

    Pure functions over bytes: no libcurl, no I/O, no allocation beyond
    what a result needs. Everything here reads text a remote server sent,
    so every read is bounded by the size given and every output by the
    room given; malformed input is an error or "absent", never a crash.
    tests/fuzz/fuzz_s3_parse.c runs them all on arbitrary bytes.

    XML     a tiny bounded scanner, enough for S3's answers (no DTDs, no
            element nested inside itself): find an element, decode its
            character data (the five entities, &#N; and &#xN;)
    bodies  ListObjectsV2 pages, error bodies (Code, Message),
            InitiateMultipartUpload (UploadId), CompleteMultipartUpload
            (ETag, or an Error inside a 200)
    headers one response header line into ETag, x-amz-meta-sha256,
            Content-Length, Content-Range's total, Last-Modified
    dates   ISO 8601 UTC (listings), HTTP dates (RFC 9110: IMF-fixdate,
            RFC 850, asctime)
    errors  S3's error code and HTTP status to a store status and kind;
            control characters and credentials scrubbed from a reason
    config  storaged/s3_endpoint and s3_style into URL base, Host and
            path prefix

        char code [64], message [256];
        lh_s3_error_parse (body, size, code, sizeof (code), message, sizeof (message));
        uint32_t status;
        const char *kind = lh_s3_error_map (http_status, code, &status);
    =========================================================================
*/

#ifndef LH_S3_PARSE_H_INCLUDED
#define LH_S3_PARSE_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_S3_FIELD_MAX     1100        //  one decoded XML field (a key)
#define LH_S3_ETAG_MAX      80          //  ETag / SHA-256 buffers, with NUL

//  What the headers of one S3 response said
typedef struct {
    char etag [LH_S3_ETAG_MAX];         //  ETag, quotes removed, or ""
    char sha256 [LH_S3_ETAG_MAX];       //  x-amz-meta-sha256, or ""
    int64_t length;                     //  Content-Length, -1 if none
    int64_t total;                      //  size from Content-Range, -1 if none
    int64_t mtime_ms;                   //  Last-Modified, 0 if none
} lh_s3_head_t;

//  One object of a ListObjectsV2 page; return non-zero to stop the parse
typedef int (lh_s3_list_entry_fn) (const char *key, uint64_t size, const char *etag,
                                   int64_t mtime_ms, void *arg);

//  Find the next <name ...>inner</name> (or <name/>) in text [*from,
//  size). Returns true with the inner range and *from moved past the
//  element; false if there is none (or it is not closed).
bool
    lh_s3_xml_find (const char *text, size_t size, size_t *from, const char *name,
                    const char **inner, size_t *inner_size);

//  Decode XML character data into out (out_max bytes, NUL included).
//  Returns the decoded size, or -1 if it does not fit, holds a NUL byte
//  or a bad entity (unknown, unterminated, or a character XML cannot
//  carry).
ssize_t
    lh_s3_xml_text (const char *text, size_t size, char *out, size_t out_max);

//  True if an S3 body holds an <Error> element (S3 may answer 200 and put
//  its error in the body)
bool
    lh_s3_xml_error (const char *text, size_t size);

//  Decode %XX and '+' (S3's encoding-type=url) in place. Returns 0, or -1
//  if a '%' is not followed by two hex digits (text is then undefined).
int
    lh_s3_url_decode (char *text);

//  An ISO 8601 UTC time ("2009-10-12T17:50:30.000Z") as ms since the
//  epoch; 0 if it does not parse
int64_t
    lh_s3_iso8601_ms (const char *text);

//  An HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT", or the obsolete RFC 850
//  and asctime forms) as seconds since the epoch; -1 if it is not one
//  (or is before 1970)
int64_t
    lh_s3_http_date (const char *text, size_t size);

//  Copy text (size bytes) into out (out_max bytes) without one pair of
//  surrounding double quotes; cut to fit
void
    lh_s3_unquote (const char *text, size_t size, char *out, size_t out_max);

//  Code and Message of an S3 error body, each "" if absent (text may be
//  NULL); a Message too long for its buffer becomes "(message too long)"
void
    lh_s3_error_parse (const char *text, size_t size, char *code, size_t code_max,
                       char *message, size_t message_max);

//  Parse a ListObjectsV2 page: fn for each <Contents> in order (until it
//  returns non-zero), *truncated from IsTruncated, *next_p the
//  NextContinuationToken (a fresh string, NULL if none). Keys are decoded
//  when EncodingType is url. Returns 0, or -1 if the page is malformed
//  (then *next_p is NULL).
int
    lh_s3_list_parse (const char *text, size_t size, lh_s3_list_entry_fn *fn, void *arg,
                      bool *truncated, char **next_p);

//  The UploadId of an InitiateMultipartUpload answer into upload_id
//  (upload_id_max bytes). Returns 0, or -1 if there is none (or it is
//  empty, or too long).
int
    lh_s3_upload_id_parse (const char *text, size_t size, char *upload_id,
                           size_t upload_id_max);

//  The ETag of a CompleteMultipartUpload answer, quotes removed, into etag
//  (etag_max bytes); "" if it has none
void
    lh_s3_complete_etag (const char *text, size_t size, char *etag, size_t etag_max);

//  Forget what an earlier response's headers said (a new response began)
void
    lh_s3_head_reset (lh_s3_head_t *head);

//  Read one response header line ("Name: value", CRLF or not, size bytes)
//  into head; lines it does not know, or values over 127 bytes, are
//  ignored
void
    lh_s3_head_parse (lh_s3_head_t *head, const char *line, size_t size);

//  The store status and error kind for an S3 error: code is S3's Code (""
//  if none), http_status the answer's status. Returns the kind (a
//  literal) and sets *status (404, 403, 412, 409, 413, 503, else 502).
const char *
    lh_s3_error_map (long http_status, const char *code, uint32_t *status);

//  Replace control characters with spaces, and every occurrence of each
//  of the secret_count secrets with '*', in place (NULL secrets and
//  those shorter than 4 bytes are skipped)
void
    lh_s3_scrub (char *text, const char *const *secrets, size_t secret_count);

//  Parse storaged/s3_endpoint ("http[s]://HOST[:PORT][/]") and s3_style
//  ("path" or "virtual") for bucket: *base_p (scheme://host for URLs),
//  *host_p (the Host header) and *prefix_p ("/BUCKET" or ""), fresh
//  strings. Returns 0, or -1 with a sentence in reason (reason_size).
int
    lh_s3_endpoint_parse (const char *endpoint, const char *style, const char *bucket,
                          char **base_p, char **host_p, char **prefix_p,
                          char *reason, size_t reason_size);

//  Self test: table-driven cases for every function
void
    lh_s3_parse_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
