/*  =========================================================================
    lh_console - the web console's files, compiled into the gateway

    The console (docs/console.md) is a few static files under console/ at
    the top of the tree: one page, one script, one style sheet, no build
    step. The Makefile turns them into byte arrays at build time
    (scripts/embed-files writes $(BUILD)/gen/lh_console_files.c), so the
    gateway serves them with nothing installed beside it:

        GET /console            index.html
        GET /console/FILE       any other file, by its base name

    Every answer has its Content-Type, an ETag (If-None-Match answers 304),
    Cache-Control: no-cache (revalidated each time: a new build shows at
    once) and a strict Content-Security-Policy: scripts, styles and
    connections from the gateway itself only, nothing inline, no frames.
    The console uses only the public HTTP API, with the bearer token the
    person types in.
    =========================================================================
*/

#ifndef LH_CONSOLE_H_INCLUDED
#define LH_CONSOLE_H_INCLUDED

#include <czmq.h>
#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The policy sent with every console file
#define LH_CONSOLE_CSP  "default-src 'none'; script-src 'self'; style-src 'self'; " \
                        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
                        "form-action 'none'; frame-ancestors 'none'"

//  One embedded file
typedef struct {
    const char *name;                   //  base name, "index.html"
    const char *content_type;           //  its Content-Type
    const char *etag;                   //  quoted: first 16 hex digits of its SHA-256
    const unsigned char *data;          //  its bytes (NUL after them)
    size_t size;                        //  how many
} lh_console_file_t;

//  The files (generated at build time)
extern const lh_console_file_t lh_console_files [];
extern const size_t lh_console_file_count;

//  The file a request path names: "/console" is index.html, "/console/X"
//  is the file X; NULL if there is none
const lh_console_file_t *
    lh_console_find (const char *path);

//  A response for file: 304 (no body) when if_none_match (may be NULL)
//  names its ETag, else 200 with its bytes; with the ETag, caching and
//  security headers. Returns the status; *response_p is NULL only when
//  libmicrohttpd cannot make one.
unsigned
    lh_console_respond (const lh_console_file_t *file, const char *if_none_match,
                        struct MHD_Response **response_p);

//  Self test of this class
void
    lh_console_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
