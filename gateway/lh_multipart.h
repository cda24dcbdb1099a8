/*  =========================================================================
    lh_multipart - a streaming multipart/form-data parser (RFC 7578, on
    RFC 2046's multipart syntax), for the gateway's POST /v1/ingest

    The parser is fed the body in chunks of any size and calls back as
    parts begin, carry bytes and end; it never holds a part's content, only
    one part's header block (at most header_max bytes, allocated once at
    creation), so memory stays bounded whatever the body's size:

        char boundary [LH_MULTIPART_BOUNDARY_MAX + 1];
        const char *reason;
        if (lh_multipart_boundary (content_type, boundary, sizeof (boundary), &reason))
            ...                         //  400: reason says why
        lh_multipart_t *form = lh_multipart_new (boundary, NULL);
        while ((size = read (fd, buffer, sizeof (buffer))) > 0)
            if (lh_multipart_feed (form, buffer, size, s_event, arg))
                break;                  //  -2: lh_multipart_error (form) says why
        if (lh_multipart_finish (form) == -2)
            ...                         //  the closing boundary never came
        lh_multipart_destroy (&form);

    The body is a preamble (ignored), then parts each opened by
    "--BOUNDARY" (optionally followed by spaces or tabs) and CRLF, their
    header lines, an empty line and the content; "CRLF--BOUNDARY--" closes
    the body and anything after it (the epilogue) is ignored. Every part
    must have a Content-Disposition of form-data with a name; a filename
    is optional; other headers are ignored. Line ends are CRLF. Anything
    else is malformed: feed returns -2 and the error is a sentence a user
    can act on (the gateway answers it as 400).
    =========================================================================
*/

#ifndef LH_MULTIPART_H_INCLUDED
#define LH_MULTIPART_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_MULTIPART_BOUNDARY_MAX 70    //  longest boundary (RFC 2046)

//  Limits of one parser; a zero field takes its default
typedef struct {
    size_t header_max;                  //  one part's header block, bytes (8192)
    size_t name_max;                    //  a field name, bytes (256)
    size_t filename_max;                //  a filename, bytes (1024)
    size_t parts_max;                   //  parts in one body (1000)
} lh_multipart_limits_t;

//  What a callback is told
typedef enum {
    LH_MULTIPART_BEGIN,                 //  a part's headers are in (no data)
    LH_MULTIPART_DATA,                  //  bytes of the part's content
    LH_MULTIPART_END                    //  the part's content is complete
} lh_multipart_event_t;

//  The part an event belongs to; valid until the callback returns
typedef struct {
    const char *name;                   //  form field name (NUL-ended, may be "")
    const char *filename;               //  its filename, or NULL when absent
    size_t index;                       //  0 for the body's first part
} lh_multipart_part_t;

//  Called for each event; data and size are set for LH_MULTIPART_DATA
//  only (never with size 0). Return 0 to go on, -1 to stop the parse.
typedef int (lh_multipart_fn) (void *arg, lh_multipart_event_t event,
                               const lh_multipart_part_t *part,
                               const char *data, size_t size);

typedef struct _lh_multipart_t lh_multipart_t;

//  Find the boundary in a Content-Type header value
//  ("multipart/form-data; boundary=XYZ", the boundary maybe quoted) and
//  copy it into boundary (boundary_size bytes, at least
//  LH_MULTIPART_BOUNDARY_MAX + 1). Returns 0, or -1 with *reason a
//  sentence (a literal) saying what is wrong.
int
    lh_multipart_boundary (const char *content_type, char *boundary,
                           size_t boundary_size, const char **reason);

//  Create a parser for a boundary that lh_multipart_boundary returned;
//  limits may be NULL for the defaults
lh_multipart_t *
    lh_multipart_new (const char *boundary, const lh_multipart_limits_t *limits);

//  Destroy a parser; nulls the caller's pointer
void
    lh_multipart_destroy (lh_multipart_t **self_p);

//  Feed the next size bytes of the body, calling fn for what they
//  complete. Returns 0; -1 if fn stopped the parse; -2 if the body is
//  malformed (lh_multipart_error). After -1 or -2 every later call
//  returns the same without reading.
int
    lh_multipart_feed (lh_multipart_t *self, const void *data, size_t size,
                       lh_multipart_fn *fn, void *arg);

//  The body ended. Returns 0 if its closing boundary was read, -2 if not
//  (lh_multipart_error), or -1 if fn had stopped the parse.
int
    lh_multipart_finish (lh_multipart_t *self);

//  Why the body was refused, a sentence; "" if it was not
const char *
    lh_multipart_error (lh_multipart_t *self);

//  Parts begun so far
size_t
    lh_multipart_parts (lh_multipart_t *self);

//  Self test of this class
void
    lh_multipart_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
