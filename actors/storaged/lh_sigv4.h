/*  =========================================================================
    lh_sigv4 - AWS Signature Version 4 (header form), for the s3 backend

    SHA-256 and HMAC-SHA-256 come from libsodium. The canonical URI is the
    request path as sent (already percent-encoded once, as S3 wants: no
    second encoding, no dot-segment normalisation).

        const char *headers [] = { "Host", "bucket.s3.amazonaws.com",
                                   "x-amz-date", "20150830T123600Z",
                                   "x-amz-content-sha256", hash, NULL };
        lh_sigv4_t request = { .method = "GET", .path = "/key", .query = "",
            .headers = headers, .payload_hash = hash, .amz_date = "20150830T123600Z",
            .region = "us-east-1", .service = "s3",
            .access_key = id, .secret_key = secret };
        char *authorization = lh_sigv4_sign (&request);
    =========================================================================
*/

#ifndef LH_SIGV4_H_INCLUDED
#define LH_SIGV4_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  One request to sign
typedef struct {
    const char *method;                 //  "GET", "PUT", ...
    const char *path;                   //  canonical URI, percent-encoded
    const char *query;                  //  canonical query (lh_sigv4_query), or ""
    const char *const *headers;         //  name, value, ..., NULL: all signed
    const char *payload_hash;           //  hex SHA-256 of the body
    const char *amz_date;               //  "YYYYMMDDTHHMMSSZ"
    const char *region;                 //  "us-east-1"
    const char *service;                //  "s3"
    const char *access_key;             //  access key id
    const char *secret_key;             //  secret access key
} lh_sigv4_t;

//  The Authorization header value (fresh string, caller frees)
char *
    lh_sigv4_sign (const lh_sigv4_t *request);

//  The canonical request (fresh string), for tests and debugging
char *
    lh_sigv4_canonical (const lh_sigv4_t *request);

//  Percent-encode bytes as SigV4 wants (A-Z a-z 0-9 - _ . ~ kept, and '/'
//  too when keep_slash). Fresh string.
char *
    lh_sigv4_encode (const char *text, size_t size, bool keep_slash);

//  Canonical query string from decoded name/value pairs (NULL-terminated
//  list name, value, ...): each encoded, sorted by name then value.
//  Fresh string ("" for no pairs).
char *
    lh_sigv4_query (const char *const *pairs);

//  Hex SHA-256 of size bytes into hex (65 bytes)
void
    lh_sigv4_sha256_hex (const void *data, size_t size, char *hex);

//  Self test: AWS's published SigV4 test-suite vectors
void
    lh_sigv4_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
