/*  =========================================================================
    lh_http_auth - the gateway's bearer tokens and client address allow-list

    Tokens come from the environment and/or a token file, never from the
    config file:
    - LAKEHOUSE_TOKEN      the primary token;
    - LAKEHOUSE_TOKENS     comma-separated tokens (the first is the primary
                           when LAKEHOUSE_TOKEN is not set), for rotation;
    - gateway/token_file   one token per line, the first being the primary,
                           each optionally followed by role=ROLE and
                           name=NAME (blank-separated):
                               c1f0e9...                (client, "primary")
                               7d21aa... name=ci        (client)
                               99be04... role=admin name=ops
                           blank lines and lines starting with # are
                           skipped. The file must be a regular file that
                           neither group nor others may read (0600): any
                           other mode is refused.
    Every token accepted at once (primary and secondaries): rotation is
    "add the new token, move clients, remove the old". Tokens are kept only
    as SHA-256 hashes and compared in constant time (sodium_memcmp over
    fixed-length hashes, every token compared every time).

    Each token has a role, client (the default, and always for the
    environment's tokens), admin or tap; with no token configured every
    caller is client. The gateway checks the role against the ACL
    (lh_acl.h) for each request; tap (whose acl/tap/call is empty by
    default) is for GET /v1/tap/stream (gateway/tap_roles).

    A reload (SIGHUP, the RELOAD pipe command, or the file's mtime
    changing) re-reads both sources. A reload that fails, or that would
    leave no token where there were some, keeps the current set and says
    why: an emptied file never opens the gateway.

    The allow-list (gateway/allow) is comma-separated CIDRs, IPv4 or IPv6
    ("10.0.0.0/8, ::1/128", a bare address means one host). Empty allows
    every address.
    =========================================================================
*/

#ifndef LH_HTTP_AUTH_H_INCLUDED
#define LH_HTTP_AUTH_H_INCLUDED

#include <czmq.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_http_auth_t lh_http_auth_t;

//  Create from a token file path (NULL or "" for none) and an allow-list
//  (NULL or "" for any). Returns NULL with *error_p set (caller frees) if
//  the tokens or the allow-list cannot be read.
lh_http_auth_t *
    lh_http_auth_new (const char *token_file, const char *allow, char **error_p);

//  Destroy; nulls the caller's pointer
void
    lh_http_auth_destroy (lh_http_auth_t **self_p);

//  Re-read the tokens if forced or if the token file changed (mtime, size,
//  inode). Returns 1 if the set was replaced, 0 if nothing changed, -1 if
//  the reload was refused (*error_p says why; the old set stays).
int
    lh_http_auth_reload (lh_http_auth_t *self, bool force, char **error_p);

//  Number of tokens currently accepted (0 = no token configured)
size_t
    lh_http_auth_tokens (lh_http_auth_t *self);

//  Does this Authorization header value carry an accepted bearer token?
//  Thread-safe. With no token configured, always true.
bool
    lh_http_auth_check (lh_http_auth_t *self, const char *authorization);

//  The role this Authorization header value grants: "client", "admin" or
//  "tap" (a static string), "client" when no token is configured, NULL when
//  the token is missing or not accepted. Thread-safe.
const char *
    lh_http_auth_role (lh_http_auth_t *self, const char *authorization);

//  The tokens as "primary (client), ops (admin)", for the log (caller
//  frees; never the tokens themselves)
char *
    lh_http_auth_describe (lh_http_auth_t *self);

//  Is the client address in the allow-list? Thread-safe.
bool
    lh_http_auth_allowed (lh_http_auth_t *self, const struct sockaddr *address);

//  Is this address a loopback address (127.0.0.0/8, ::1, v4-mapped 127)?
bool
    lh_http_auth_loopback (const struct sockaddr *address);

//  Self test of this class
void
    lh_http_auth_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
