/*  =========================================================================
    lh_console - the web console's files, compiled into the gateway (see
    lh_console.h)
    =========================================================================
*/

#include "lh_console.h"

//  --------------------------------------------------------------------------
//  The file a request path names, or NULL

const lh_console_file_t *
lh_console_find (const char *path)
{
    assert (path);
    const char *name = NULL;
    if (streq (path, "/console"))
        name = "index.html";
    else
    if (strncmp (path, "/console/", 9) == 0)
        name = path + 9;
    if (!name || !*name)
        return NULL;
    for (size_t index = 0; index < lh_console_file_count; index++)
        if (streq (lh_console_files [index].name, name))
            return &lh_console_files [index];
    return NULL;
}


//  --------------------------------------------------------------------------
//  Does an If-None-Match value name etag ("*", or a list of ETags, weak
//  ones compared weakly as RFC 9110 says for GET)

static bool
s_etag_matches (const char *if_none_match, const char *etag)
{
    if (streq (if_none_match, "*"))
        return true;
    size_t size = strlen (etag);
    const char *cursor = if_none_match;
    while (*cursor) {
        while (*cursor == ' ' || *cursor == ',' || *cursor == '\t')
            cursor++;
        if (strncmp (cursor, "W/", 2) == 0)
            cursor += 2;
        if (strncmp (cursor, etag, size) == 0
        &&  (cursor [size] == 0 || cursor [size] == ',' || cursor [size] == ' '))
            return true;
        while (*cursor && *cursor != ',')
            cursor++;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  A response for a file: 200 with its bytes, or 304

unsigned
lh_console_respond (const lh_console_file_t *file, const char *if_none_match,
                    struct MHD_Response **response_p)
{
    assert (file && response_p);
    unsigned status = if_none_match && s_etag_matches (if_none_match, file->etag)? 304: 200;
    struct MHD_Response *response = MHD_create_response_from_buffer (
        status == 200? file->size: 0, (void *) file->data, MHD_RESPMEM_PERSISTENT);
    if (response) {
        MHD_add_response_header (response, MHD_HTTP_HEADER_ETAG, file->etag);
        MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header (response, "Content-Security-Policy", LH_CONSOLE_CSP);
        MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header (response, "Referrer-Policy", "no-referrer");
        MHD_add_response_header (response, "X-Frame-Options", "DENY");
    }
    *response_p = response;
    return status;
}


//  --------------------------------------------------------------------------
//  Self test: the files are there, found by path, and answered

void
lh_console_test (bool verbose)
{
    printf (" * lh_console: ");
    const lh_console_file_t *index = lh_console_find ("/console");
    assert (index && streq (index->name, "index.html"));
    assert (strncmp (index->content_type, "text/html", 9) == 0);
    assert (index->size > 0 && index->data [index->size] == 0);
    assert (strlen (index->etag) == 18 && index->etag [0] == '"' && index->etag [17] == '"');
    assert (lh_console_find ("/console/index.html") == index);
    assert (lh_console_find ("/console/") == NULL);
    assert (lh_console_find ("/console/nope.js") == NULL);
    assert (lh_console_find ("/console/../etc/passwd") == NULL);
    assert (lh_console_find ("/consolex") == NULL);
    for (size_t at = 0; at < lh_console_file_count; at++) {
        const lh_console_file_t *file = &lh_console_files [at];
        if (verbose)
            printf ("\n   %s %s %zu bytes %s", file->name, file->content_type, file->size, file->etag);
        assert (!strchr (file->name, '/'));
        assert (strcmp (file->content_type, "application/octet-stream") != 0);
    }
    char list [64];
    snprintf (list, sizeof (list), "\"x\", W/%s", index->etag);
    assert (s_etag_matches (list, index->etag));
    assert (s_etag_matches ("*", index->etag));
    assert (!s_etag_matches ("\"x\"", index->etag));
    assert (!s_etag_matches ("", index->etag));
    struct MHD_Response *response;
    assert (lh_console_respond (index, NULL, &response) == 200 && response);
    assert (streq (MHD_get_response_header (response, "Content-Security-Policy"), LH_CONSOLE_CSP));
    MHD_destroy_response (response);
    assert (lh_console_respond (index, index->etag, &response) == 304 && response);
    MHD_destroy_response (response);
    printf ("OK\n");
}
