/*  =========================================================================
    lh_gw_upload - the gateway's streaming bodies into storaged; see
    lh_gw_upload.h
    =========================================================================
*/

#include "lh_gw_upload.h"
#include "lh_ingest_upload.h"
#include "lh_multipart.h"

struct _lh_gw_upload_t {
    lh_gw_upload_opts_t opts;           //  options (strings copied below)
    char *key;                          //  object key
    char *trace;                        //  trace id
    char *span;                         //  opts.span, or NULL
    lh_ingest_upload_t *upload;         //  into storaged, from the first byte on
    lh_multipart_t *form;               //  multipart/form-data parser, or NULL
    bool file_seen;                     //  the form had a "file" field
    char *form_name;                    //  the form's "name" field, or NULL
    size_t form_name_size;              //  its length
    bool form_name_done;                //  its part has ended
    char *query_name;                   //  opts.name, or NULL
    char *name;                         //  the dataset name chosen at finish
    char *if_none_match;                //  PUT condition, or NULL
    char *if_match;                     //  PUT condition, or NULL
    uint32_t status;                    //  failure status, 0 = none
    char *kind;                         //  its kind
    char *reason;                       //  its reason
    uint64_t retry_after_ms;            //  its retry_after_ms, 0 = none
};


//  --------------------------------------------------------------------------
//  Record a failure (the first one wins); returns -1

static int
s_fail (lh_gw_upload_t *self, uint32_t status, const char *kind, uint64_t retry_after_ms,
        const char *format, ...) CHECK_PRINTF (5);

static int
s_fail (lh_gw_upload_t *self, uint32_t status, const char *kind, uint64_t retry_after_ms,
        const char *format, ...)
{
    if (self->status)
        return -1;
    self->status = status;
    self->kind = strdup (kind);
    va_list args;
    va_start (args, format);
    self->reason = zsys_vprintf (format, args);
    va_end (args);
    assert (self->kind && self->reason);
    self->retry_after_ms = retry_after_ms;
    return -1;
}


//  --------------------------------------------------------------------------
//  Record the failure of the upload into storaged; returns -1

static int
s_upload_failed (lh_gw_upload_t *self)
{
    lh_ingest_upload_t *upload = self->upload;
    return s_fail (self, lh_ingest_upload_status (upload), lh_ingest_upload_kind (upload),
                   lh_ingest_upload_retry_after (upload), "%s",
                   lh_ingest_upload_reason (upload));
}


//  --------------------------------------------------------------------------
//  Open the upload into storaged on client (once). Returns 0, or -1 with
//  the failure recorded.

static int
s_upload_open (lh_gw_upload_t *self, lh_client_t *client)
{
    if (self->status)
        return -1;
    if (self->upload)
        return 0;
    if (!client)
        return s_fail (self, LH_ST_UNAVAILABLE, "bus_unreachable", 1000,
                       "the gateway cannot reach the broker");
    lh_ingest_upload_opts_t opts = {
        .part_size = self->opts.part_size,
        .timeout_ms = self->opts.timeout_ms,
        .trace = self->trace,
        .span = self->span,
        .if_none_match = self->opts.ingest? "*": self->if_none_match,
        .if_match = self->if_match,
        .size_max = self->opts.size_max,
        .size_key = self->opts.size_key,
        .size_declared = self->opts.ingest? 0: self->opts.declared
    };
    self->upload = lh_ingest_upload_new (client, self->key, &opts);
    return 0;
}


//  --------------------------------------------------------------------------
//  Bytes of the object: into the upload

static int
s_write (lh_gw_upload_t *self, lh_client_t *client, const char *data, size_t size)
{
    if (s_upload_open (self, client))
        return -1;
    if (lh_ingest_upload_write (self->upload, data, size))
        return s_upload_failed (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Create an upload

lh_gw_upload_t *
lh_gw_upload_new (const lh_gw_upload_opts_t *opts)
{
    assert (opts && (opts->ingest || opts->key));
    lh_gw_upload_t *self = (lh_gw_upload_t *) zmalloc (sizeof (lh_gw_upload_t));
    assert (self);
    self->opts = *opts;
    self->key = opts->ingest? lh_ingest_source_key (): strdup (opts->key);
    self->trace = opts->trace? strdup (opts->trace): NULL;
    self->span = opts->span? strdup (opts->span): NULL;
    self->query_name = opts->name? strdup (opts->name): NULL;
    assert (self->key);
    self->opts.key = NULL;
    self->opts.trace = NULL;
    self->opts.span = NULL;
    self->opts.name = NULL;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy an upload; aborts one not finished

void
lh_gw_upload_destroy (lh_gw_upload_t **self_p)
{
    assert (self_p);
    lh_gw_upload_t *self = *self_p;
    if (self) {
        lh_ingest_upload_destroy (&self->upload);
        lh_multipart_destroy (&self->form);
        free (self->key);
        free (self->trace);
        free (self->span);
        free (self->form_name);
        free (self->query_name);
        free (self->name);
        free (self->if_none_match);
        free (self->if_match);
        free (self->kind);
        free (self->reason);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The request's headers: a PUT's conditions, an ingest's Content-Type

int
lh_gw_upload_headers (lh_gw_upload_t *self, const char *if_none_match,
                      const char *if_match, const char *content_type)
{
    assert (self);
    if (!self->opts.ingest) {
        if (if_none_match) {
            if (streq (if_none_match, "*"))
                self->if_none_match = strdup ("*");
            else
                s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                        "If-None-Match on PUT must be * (create only)");
        }
        if (if_match) {
            if (strncmp (if_match, "W/", 2) == 0)
                if_match += 2;
            size_t size = strlen (if_match);
            if (size >= 2 && if_match [0] == '"' && if_match [size - 1] == '"') {
                if_match++;
                size -= 2;
            }
            if (size == 0 || size > 128 || memchr (if_match, ',', size))
                s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                        "If-Match on PUT must be one ETag");
            else
                self->if_match = strndup (if_match, size);
        }
    }
    else
    if (content_type && strncasecmp (content_type, "multipart/form-data", 19) == 0) {
        char boundary [LH_MULTIPART_BOUNDARY_MAX + 1];
        const char *reason;
        if (lh_multipart_boundary (content_type, boundary, sizeof (boundary), &reason) == 0)
            self->form = lh_multipart_new (boundary, NULL);
        else
            s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                    "the multipart/form-data Content-Type has no usable boundary: %s", reason);
    }
    return self->status? -1: 0;
}


//  --------------------------------------------------------------------------
//  Would storaged take the declared size? (a dry run, before the body)

int
lh_gw_upload_check (lh_gw_upload_t *self, lh_client_t *client)
{
    assert (self);
    if (s_upload_open (self, client))
        return -1;
    if (lh_ingest_upload_check (self->upload))
        return s_upload_failed (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  multipart/form-data: "file" goes to the upload, "name" is kept

typedef struct {
    lh_gw_upload_t *upload;             //  the upload
    lh_client_t *client;                //  the HTTP thread's bus client
} s_form_arg_t;

static int
s_form_event (void *arg, lh_multipart_event_t event, const lh_multipart_part_t *part,
              const char *data, size_t size)
{
    s_form_arg_t *form = (s_form_arg_t *) arg;
    lh_gw_upload_t *self = form->upload;
    const char *key = part->name;
    if (event == LH_MULTIPART_END && streq (key, "name"))
        self->form_name_done = true;
    if (self->status || event == LH_MULTIPART_END)
        return 0;
    if (streq (key, "file")) {
        self->file_seen = true;
        if (size)
            s_write (self, form->client, data, size);
    }
    else
    if (streq (key, "name") && size) {
        if (self->form_name_size + size > LH_GW_FORM_NAME_MAX) {
            s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                    "the form field 'name' is longer than %d bytes", LH_GW_FORM_NAME_MAX);
            return 0;
        }
        char *name = (char *) realloc (self->form_name, self->form_name_size + size + 1);
        assert (name);
        memcpy (name + self->form_name_size, data, size);
        self->form_name_size += size;
        name [self->form_name_size] = 0;
        self->form_name = name;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  A piece of the body

int
lh_gw_upload_take (lh_gw_upload_t *self, lh_client_t *client, const char *data, size_t size)
{
    assert (self);
    if (self->status)
        return -1;
    if (!self->form)
        return s_write (self, client, data, size);
    s_form_arg_t arg = { self, client };
    if (lh_multipart_feed (self->form, data, size, s_form_event, &arg))
        s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                "the multipart/form-data body is malformed: %s", lh_multipart_error (self->form));
    return self->status? -1: 0;
}


//  --------------------------------------------------------------------------
//  The whole body is in: the form complete, the name chosen, the object
//  made visible

int
lh_gw_upload_finish (lh_gw_upload_t *self, lh_client_t *client)
{
    const char *query_name = self->query_name;
    assert (self);
    if (self->form) {
        if (lh_multipart_finish (self->form))
            s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                    "the multipart/form-data body is incomplete: %s",
                    lh_multipart_error (self->form));
        else
        if (!self->file_seen)
            s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                    "the multipart/form-data body has no field 'file'");
    }
    if (self->opts.ingest) {
        const char *name = query_name && *query_name? query_name: self->form_name;
        if (!name || !*name)
            s_fail (self, LH_ST_BAD_REQUEST, "bad_request", 0,
                    "the dataset name is required: ?name=NAME, or a form field 'name'");
        else {
            free (self->name);
            self->name = strdup (name);
        }
    }
    if (s_upload_open (self, client))
        return -1;
    if (lh_ingest_upload_finish (self->upload))
        return s_upload_failed (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Accessors

uint32_t
lh_gw_upload_status (lh_gw_upload_t *self)
{
    assert (self);
    return self->status;
}

const char *
lh_gw_upload_kind (lh_gw_upload_t *self)
{
    assert (self);
    return self->kind? self->kind: "";
}

const char *
lh_gw_upload_reason (lh_gw_upload_t *self)
{
    assert (self);
    return self->reason? self->reason: "";
}

uint64_t
lh_gw_upload_retry_after (lh_gw_upload_t *self)
{
    assert (self);
    return self->retry_after_ms;
}

const char *
lh_gw_upload_key (lh_gw_upload_t *self)
{
    assert (self);
    return self->key;
}

const char *
lh_gw_upload_etag (lh_gw_upload_t *self)
{
    assert (self);
    return self->upload? lh_ingest_upload_etag (self->upload): "";
}

uint64_t
lh_gw_upload_size (lh_gw_upload_t *self)
{
    assert (self);
    return self->upload? lh_ingest_upload_bytes (self->upload): 0;
}

const char *
lh_gw_upload_name (lh_gw_upload_t *self)
{
    assert (self);
    return self->name;
}

const char *
lh_gw_upload_name_known (lh_gw_upload_t *self)
{
    assert (self);
    if (self->query_name && *self->query_name)
        return self->query_name;
    return self->form_name_done && self->form_name? self->form_name: NULL;
}

const char *
lh_gw_upload_id (lh_gw_upload_t *self)
{
    assert (self);
    return self->upload? lh_ingest_upload_id (self->upload): NULL;
}


//  --------------------------------------------------------------------------
//  Self test: headers, the form's fields, failures kept (no bus: a NULL
//  client is 503, so nothing reaches storaged)

void
lh_gw_upload_test (bool verbose)
{
    printf (" * lh_gw_upload: ");
    //  A PUT's conditions
    lh_gw_upload_opts_t put = { .key = "a/b", .part_size = 4096, .trace = "t" };
    lh_gw_upload_t *upload = lh_gw_upload_new (&put);
    assert (streq (lh_gw_upload_key (upload), "a/b"));
    assert (lh_gw_upload_headers (upload, "*", "W/\"abc\"", NULL) == 0);
    assert (streq (upload->if_none_match, "*") && streq (upload->if_match, "abc"));
    lh_gw_upload_destroy (&upload);
    assert (!upload);
    const char *bad [][2] = { { "abc", NULL }, { NULL, "\"\"" }, { NULL, "a,b" } };
    for (size_t index = 0; index < 3; index++) {
        upload = lh_gw_upload_new (&put);
        assert (lh_gw_upload_headers (upload, bad [index][0], bad [index][1], NULL) == -1);
        assert (lh_gw_upload_status (upload) == 400);
        if (verbose)
            printf ("\n   %s", lh_gw_upload_reason (upload));
        //  The first failure stays; later calls fail at once
        assert (lh_gw_upload_take (upload, NULL, "x", 1) == -1);
        assert (lh_gw_upload_status (upload) == 400);
        lh_gw_upload_destroy (&upload);
    }
    //  No bus client: 503 with a retry
    upload = lh_gw_upload_new (&put);
    assert (lh_gw_upload_take (upload, NULL, "x", 1) == -1);
    assert (lh_gw_upload_status (upload) == 503 && lh_gw_upload_retry_after (upload) == 1000);
    assert (streq (lh_gw_upload_kind (upload), "bus_unreachable"));
    lh_gw_upload_destroy (&upload);

    //  An ingest: a fresh key; a form's name field; a bad boundary
    lh_gw_upload_opts_t ingest = { .ingest = true, .part_size = 4096 };
    upload = lh_gw_upload_new (&ingest);
    assert (strncmp (lh_gw_upload_key (upload), "uploads/ingest/", 15) == 0);
    assert (lh_gw_upload_headers (upload, NULL, NULL,
                                  "multipart/form-data; boundary=XyZ") == 0);
    const char *form = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
                       "workers\r\n--XyZ--\r\n";
    for (const char *at = form; *at; at++)
        assert (lh_gw_upload_take (upload, NULL, at, 1) == 0);
    assert (upload->form_name && streq (upload->form_name, "workers"));
    //  ... but no file field
    assert (streq (lh_gw_upload_name_known (upload), "workers"));
    assert (!lh_gw_upload_id (upload));
    assert (lh_gw_upload_finish (upload, NULL) == -1);
    assert (lh_gw_upload_status (upload) == 400);
    assert (strstr (lh_gw_upload_reason (upload), "no field 'file'"));
    lh_gw_upload_destroy (&upload);
    upload = lh_gw_upload_new (&ingest);
    assert (lh_gw_upload_headers (upload, NULL, NULL, "multipart/form-data") == -1);
    assert (strstr (lh_gw_upload_reason (upload), "boundary"));
    lh_gw_upload_destroy (&upload);
    //  A raw body with no name anywhere
    upload = lh_gw_upload_new (&ingest);
    assert (lh_gw_upload_headers (upload, NULL, NULL, "text/csv") == 0);
    assert (!lh_gw_upload_name_known (upload));
    assert (lh_gw_upload_finish (upload, NULL) == -1);
    assert (strstr (lh_gw_upload_reason (upload), "dataset name is required"));
    lh_gw_upload_destroy (&upload);
    printf ("OK\n");
}
