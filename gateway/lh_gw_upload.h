/*  =========================================================================
    lh_gw_upload - the gateway's streaming bodies into storaged:
    PUT /v1/storage/KEY and POST /v1/ingest (a raw CSV body, or
    multipart/form-data with a "file" field and an optional "name")

    One per request. It reads the request's headers (a PUT's If-None-Match
    and If-Match; an ingest's Content-Type, which may make the body a form
    parsed by lh_multipart), then takes the body in pieces as they arrive
    and moves the object's bytes into storaged (lh_ingest_upload: one part
    held, a small body as one put). Every storaged call is made on the
    HTTP thread's bus client, handed in with each call (the connection
    never leaves its thread); NULL there is 503.

    The first failure is kept (status, kind, reason, retry_after_ms in the
    SPEC 4 sense) and every later call returns -1 at once; the gateway
    answers it when the body has been read. Destroying an upload that did
    not finish aborts it in storaged.

        lh_gw_upload_opts_t opts = { .ingest = true, .part_size = ... };
        lh_gw_upload_t *upload = lh_gw_upload_new (&opts);
        lh_gw_upload_headers (upload, NULL, NULL, content_type);
        ...lh_gw_upload_take (upload, client, data, size) per piece...
        if (lh_gw_upload_finish (upload, client, query_name) == 0)
            ...ingestd.ingest {lh_gw_upload_name, lh_gw_upload_key}...
        else
            ...answer lh_gw_upload_status, _kind, _reason, _retry_after...
        lh_gw_upload_destroy (&upload);
    =========================================================================
*/

#ifndef LH_GW_UPLOAD_H_INCLUDED
#define LH_GW_UPLOAD_H_INCLUDED

#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_GW_FORM_NAME_MAX 256         //  longest multipart "name" field

//  What the upload is, from the route and the gateway's settings
typedef struct {
    bool ingest;                        //  POST /v1/ingest (else PUT /v1/storage/KEY)
    const char *key;                    //  a PUT's object key (copied); ingest: a fresh one
    const char *name;                   //  an ingest's ?name= (copied), or NULL
    size_t part_size;                   //  gateway/part_size
    uint32_t timeout_ms;                //  each storaged call (gateway/storage_timeout_ms)
    const char *trace;                  //  the request's trace id (copied)
    const char *span;                   //  its span, parent of the storaged calls (copied), or NULL
    uint64_t size_max;                  //  the route's body limit (413 past it)
    const char *size_key;               //  the setting that raises it (not copied)
    uint64_t declared;                  //  Content-Length, 0 = none
} lh_gw_upload_opts_t;

typedef struct _lh_gw_upload_t lh_gw_upload_t;

//  Create an upload; nothing is sent until bytes arrive
lh_gw_upload_t *
    lh_gw_upload_new (const lh_gw_upload_opts_t *opts);

//  Destroy an upload; one not finished is aborted. Nulls the caller's
//  pointer.
void
    lh_gw_upload_destroy (lh_gw_upload_t **self_p);

//  The request's headers (each may be NULL): a PUT's conditions
//  (If-None-Match must be *, If-Match one ETag), an ingest's Content-Type
//  (multipart/form-data needs a usable boundary). Returns 0, or -1 with a
//  400 recorded.
int
    lh_gw_upload_headers (lh_gw_upload_t *self, const char *if_none_match,
                          const char *if_match, const char *content_type);

//  Before any byte of a PUT whose declared size is over one part: ask
//  storaged whether it would take it (its cap for the key, the
//  conditions), so a refusal comes before the body is sent. Returns 0, or
//  -1 with the refusal recorded.
int
    lh_gw_upload_check (lh_gw_upload_t *self, lh_client_t *client);

//  A piece of the body: into the upload (a form's "file" field; its
//  "name" is kept). Returns 0, or -1 once the upload has failed.
int
    lh_gw_upload_take (lh_gw_upload_t *self, lh_client_t *client,
                       const char *data, size_t size);

//  The whole body is in: check the form is complete (an ingest's, with a
//  "file"), choose an ingest's dataset name (opts.name, else the form's
//  "name"; 400 if neither), and make the object visible in storaged.
//  Returns 0, or -1 with the failure recorded.
int
    lh_gw_upload_finish (lh_gw_upload_t *self, lh_client_t *client);

//  The recorded failure: its HTTP status (0: none), kind, reason and
//  retry_after_ms (0: none)
uint32_t
    lh_gw_upload_status (lh_gw_upload_t *self);
const char *
    lh_gw_upload_kind (lh_gw_upload_t *self);
const char *
    lh_gw_upload_reason (lh_gw_upload_t *self);
uint64_t
    lh_gw_upload_retry_after (lh_gw_upload_t *self);

//  The object's key (an ingest's fresh uploads/ingest/ key)
const char *
    lh_gw_upload_key (lh_gw_upload_t *self);

//  After finish: the object's ETag (hex) and size
const char *
    lh_gw_upload_etag (lh_gw_upload_t *self);
uint64_t
    lh_gw_upload_size (lh_gw_upload_t *self);

//  After an ingest's finish: the dataset name chosen
const char *
    lh_gw_upload_name (lh_gw_upload_t *self);

//  While the body streams: the dataset name if it is known already
//  (opts.name, or a form's "name" field that came whole before now), else
//  NULL
const char *
    lh_gw_upload_name_known (lh_gw_upload_t *self);

//  storaged's id of the multipart upload once it has begun (a whole part
//  is in), else NULL: ingestd can follow the upload by it as it lands
const char *
    lh_gw_upload_id (lh_gw_upload_t *self);

//  Self test of this class (headers, the form's fields, failures kept)
void
    lh_gw_upload_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
