/*  =========================================================================
    lh_cert - CURVE certificates: create, load, the broker's allow set,
    and the bus link a process builds from its config

    A certificate is a czmq zcert pair of files: NAME.cert (public key and
    metadata) and NAME.cert_secret (the secret key too, mode 0600). The
    metadata carries:

        name        the peer's name; its HELLO must say exactly this
        role        actor, gateway, client, admin, tap, mcp (or broker)
        keyid       first 8 characters of the public key (Z85), for logs
        expires     UTC "YYYY-MM-DDTHH:MM:SSZ", or "never"

    The broker's allow directory holds public certificates only (one file
    per key). An allow set loads it and reloads it when a file is added,
    removed or changed; certificates are added and removed as new files,
    never rewritten in place (conf/certs/README.md has the layout).

        char *error = NULL;
        if (lh_cert_create ("var/certs", "node-b", "actor", 365,
                            "var/certs/allow", &error) != 0) ...
        lh_allow_t *allow = lh_allow_new ("var/certs/allow");
        lh_allow_refresh (allow);
        const lh_allow_entry_t *entry = lh_allow_lookup (allow, z85_key);
    =========================================================================
*/

#ifndef LH_CERT_H_INCLUDED
#define LH_CERT_H_INCLUDED

#include "lh_proto.h"
#include "lh_config.h"
#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_ROLE_MAX     16              //  longest role name
#define LH_KEYID_SIZE   8               //  characters of keyid

//  One accepted public key
typedef struct {
    char key [LH_UID_SIZE + 1];         //  public key, Z85
    char name [LH_NAME_MAX + 1];        //  metadata name
    char role [LH_ROLE_MAX + 1];        //  metadata role
    char keyid [LH_KEYID_SIZE + 1];     //  metadata keyid
    int64_t expires;                    //  UTC seconds; 0 = never
} lh_allow_entry_t;

typedef struct _lh_allow_t lh_allow_t;

//  Create a new keypair NAME with role and expiry (days from now; 0 =
//  never) as DIR/NAME.cert + DIR/NAME.cert_secret (0600), and a public
//  copy in allow_dir when not NULL. Refuses to overwrite an existing file.
//  Returns 0, or -1 and a sentence in *error_p (caller frees).
int
    lh_cert_create (const char *dir, const char *name, const char *role,
                    int days, const char *allow_dir, char **error_p);

//  Load a certificate from PATH (NAME.cert; its NAME.cert_secret is read
//  too when present; a path ending in _secret is accepted). With
//  need_secret, a certificate without its secret key is an error. Returns
//  the certificate, or NULL and a sentence in *error_p (caller frees).
zcert_t *
    lh_cert_load (const char *path, bool need_secret, char **error_p);

//  Expiry of a certificate from its metadata: UTC seconds, 0 = never,
//  -1 = unreadable
int64_t
    lh_cert_expires (zcert_t *cert);

//  A server key from config: a 40-character Z85 key as it is, or the path
//  of a public certificate. Returns the key (caller frees), or NULL and a
//  sentence in *error_p (caller frees).
char *
    lh_cert_server_key (const char *value, char **error_p);

//  Make sure DIR holds the local certificate set that `lakehouse up`
//  needs: broker (server), admin, tap, node (actor), gateway, mcp (
//  role mcp, for `lakehouse mcp`), each with a public copy in DIR/allow (not the
//  broker's). Creates only what is missing. Returns 0, or -1 and a sentence in *error_p (caller frees).
int
    lh_cert_ensure_local (const char *dir, char **error_p);

//  The certificate directory from config: bus/certs, else DATA_DIR/certs
//  (caller frees)
char *
    lh_cert_dir (lh_config_t *config);

//  Build the bus link of a process from its config. endpoint is the
//  broker endpoint. CURVE is used unless the endpoint is inproc://, or
//  bus/curve is false (then bus/plain must be true and the endpoint
//  loopback or ipc://); an explicit cert_path always means CURVE. The client
//  certificate is cert_path, else bus/cert, else CERTS/default_name.cert;
//  the server key is server_key, else bus/server_key, else CERTS/broker.cert.
//  Fills link (pointing into *cert_p and *key_p, which the caller destroys
//  / frees after the link's users). Returns 0, or -1 and *error_p.
int
    lh_cert_link (lh_config_t *config, const char *endpoint,
                  const char *default_name, const char *cert_path,
                  const char *server_key, lh_link_t *link,
                  zcert_t **cert_p, char **key_p, char **error_p);

//  An in-process certificate: how the process that runs the broker gives a
//  role to a peer it starts in that same process (an actor, the gateway).
//  It carries no key that anyone checks: its metadata holds role and the
//  grant the broker made for that role (the broker's GRANT command), and
//  lh_link_connect presents the grant as the routing id of the inproc://
//  connection (docs/broker.md, "Roles"). A link's users copy the link's
//  cert pointer along with its endpoint, so the role reaches every
//  connection they make. Returns a new certificate (caller destroys).
zcert_t *
    lh_cert_inproc (const char *grant, const char *role);

//  Is this tcp endpoint on loopback (127.x, localhost, [::1]); ipc:// and
//  inproc:// count as local
bool
    lh_endpoint_is_local (const char *endpoint);

//  ---------------------------------------------------------------------
//  The allow set

//  Create an allow set over a directory (not read until refreshed)
lh_allow_t *
    lh_allow_new (const char *dir);

//  Destroy; nulls the caller's pointer
void
    lh_allow_destroy (lh_allow_t **self_p);

//  Reload the directory if any file in it was added, removed or changed
//  (by name, size, mtime, inode). Returns 1 if reloaded, 0 if unchanged,
//  -1 if the directory cannot be read (the set is then empty).
int
    lh_allow_refresh (lh_allow_t *self);

//  Force the next refresh to reload
void
    lh_allow_touch (lh_allow_t *self);

//  The entry of a Z85 public key, or NULL if not allowed or expired now
const lh_allow_entry_t *
    lh_allow_lookup (lh_allow_t *self, const char *key);

//  Number of keys loaded
size_t
    lh_allow_size (lh_allow_t *self);

//  Generation: increases each time the set is reloaded
uint64_t
    lh_allow_generation (lh_allow_t *self);

//  Self test of this class
void
    lh_cert_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
