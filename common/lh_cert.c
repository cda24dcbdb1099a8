/*  =========================================================================
    lh_cert - CURVE certificates: create, load, the broker's allow set,
    and the bus link a process builds from its config

    See lh_cert.h. The allow set is a zhashx keyed by the Z85 public key;
    a refresh lists the directory and compares a fingerprint of every
    entry's name, size, mtime and inode with the last one, and reloads
    only when it differs (a cert file is never rewritten in place, so a
    new or removed file always changes the fingerprint).
    =========================================================================
*/

#include "lh_cert.h"
#include "lh_log.h"
#include <dirent.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>

#define S_LOCAL_DAYS    3650            //  validity of the local set

struct _lh_allow_t {
    char *dir;                          //  directory of public certs
    zhashx_t *entries;                  //  Z85 key -> lh_allow_entry_t
    uint64_t fingerprint;               //  of the directory listing
    bool loaded;                        //  fingerprint is valid
    uint64_t generation;                //  reloads so far
};


//  --------------------------------------------------------------------------
//  Is a role name one we know?

static bool
s_role_valid (const char *role)
{
    return role && (streq (role, "actor") || streq (role, "gateway")
        || streq (role, "client") || streq (role, "admin")
        || streq (role, "tap") || streq (role, "mcp") || streq (role, "broker"));
}


//  --------------------------------------------------------------------------
//  Is a certificate name valid: 1..64 of [A-Za-z0-9_.:-]?

static bool
s_name_valid (const char *name)
{
    size_t size = name? strlen (name): 0;
    if (size < 1 || size > LH_NAME_MAX)
        return false;
    for (const char *scan = name; *scan; scan++) {
        char c = *scan;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        ||    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Create an empty file with mode 0600 (fails if it exists)

static int
s_create_private (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd == -1)
        return -1;
    close (fd);
    return 0;
}


//  --------------------------------------------------------------------------
//  Create a new keypair with metadata, saved as DIR/NAME.cert and
//  DIR/NAME.cert_secret (0600), plus a public copy in allow_dir

int
lh_cert_create (const char *dir, const char *name, const char *role,
                int days, const char *allow_dir, char **error_p)
{
    assert (dir && error_p);
    if (!s_name_valid (name)) {
        *error_p = zsys_sprintf ("certificate name '%s' must be 1..64 bytes of "
                                 "[A-Za-z0-9_.:-]", name? name: "");
        return -1;
    }
    if (!s_role_valid (role)) {
        *error_p = zsys_sprintf ("role '%s' is not one of actor, gateway, client, "
                                 "admin, tap, mcp, broker", role? role: "");
        return -1;
    }
    if (days < 0) {
        *error_p = strdup ("days must be 0 (never expires) or more");
        return -1;
    }
    if (zsys_dir_create ("%s", dir) != 0
    ||  (allow_dir && zsys_dir_create ("%s", allow_dir) != 0)) {
        *error_p = zsys_sprintf ("cannot create directory '%s': %s",
                                 dir, strerror (errno));
        return -1;
    }
    char *public_path = zsys_sprintf ("%s/%s.cert", dir, name);
    char *secret_path = zsys_sprintf ("%s/%s.cert_secret", dir, name);
    char *allow_path = allow_dir? zsys_sprintf ("%s/%s.cert", allow_dir, name): NULL;
    int rc = -1;
    zcert_t *cert = NULL;
    if (zsys_file_exists (public_path) || zsys_file_exists (secret_path)
    ||  (allow_path && zsys_file_exists (allow_path))) {
        *error_p = zsys_sprintf ("certificate '%s' exists already in %s%s%s: "
                                 "certificates are never overwritten, pick a new name",
                                 name, dir, allow_path? " or ": "",
                                 allow_path? allow_dir: "");
        goto done;
    }
    cert = zcert_new ();
    assert (cert);
    char keyid [LH_KEYID_SIZE + 1];
    snprintf (keyid, sizeof keyid, "%s", zcert_public_txt (cert));
    char expires [32] = "never";
    if (days > 0) {
        time_t when = time (NULL) + (time_t) days * 86400;
        struct tm tm;
        gmtime_r (&when, &tm);
        strftime (expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "role", "%s", role);
    zcert_set_meta (cert, "keyid", "%s", keyid);
    zcert_set_meta (cert, "expires", "%s", expires);
    if (s_create_private (secret_path) != 0
    ||  zcert_save_secret (cert, secret_path) != 0
    ||  chmod (secret_path, 0600) != 0) {
        *error_p = zsys_sprintf ("cannot write '%s': %s", secret_path, strerror (errno));
        goto done;
    }
    if (zcert_save_public (cert, public_path) != 0
    ||  (allow_path && zcert_save_public (cert, allow_path) != 0)) {
        *error_p = zsys_sprintf ("cannot write the public certificate of '%s': %s",
                                 name, strerror (errno));
        goto done;
    }
    rc = 0;
done:
    zcert_destroy (&cert);
    free (public_path);
    free (secret_path);
    free (allow_path);
    return rc;
}


//  --------------------------------------------------------------------------
//  Load a certificate (public, plus secret when its _secret file exists)

zcert_t *
lh_cert_load (const char *path, bool need_secret, char **error_p)
{
    assert (error_p);
    if (!path || !*path) {
        *error_p = strdup ("no certificate path");
        return NULL;
    }
    char *base = strdup (path);
    size_t size = strlen (base);
    if (size > 7 && streq (base + size - 7, "_secret"))
        base [size - 7] = 0;
    zcert_t *cert = NULL;
    char *secret = zsys_sprintf ("%s_secret", base);
    if (!zsys_file_exists (base) && !zsys_file_exists (secret))
        *error_p = zsys_sprintf ("certificate '%s' not found", base);
    else {
        cert = zcert_load (base);
        if (!cert)
            *error_p = zsys_sprintf ("certificate '%s' cannot be read", base);
        else
        if (need_secret
        &&  streq (zcert_secret_txt (cert), "0000000000000000000000000000000000000000")) {
            *error_p = zsys_sprintf ("certificate '%s' has no secret key (%s missing "
                                     "or unreadable)", base, secret);
            zcert_destroy (&cert);
        }
    }
    free (secret);
    free (base);
    return cert;
}


//  --------------------------------------------------------------------------
//  Expiry of a certificate: UTC seconds, 0 = never, -1 = unreadable

int64_t
lh_cert_expires (zcert_t *cert)
{
    const char *text = zcert_meta (cert, "expires");
    if (!text || !*text || streq (text, "never"))
        return 0;
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *end = strptime (text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    return (int64_t) timegm (&tm);
}


//  --------------------------------------------------------------------------
//  A server key: Z85 as is, or a public certificate's key

char *
lh_cert_server_key (const char *value, char **error_p)
{
    assert (error_p);
    if (!value || !*value) {
        *error_p = strdup ("no server key");
        return NULL;
    }
    if (strlen (value) == LH_UID_SIZE && !zsys_file_exists (value)) {
        uint8_t key [32];
        if (zmq_z85_decode (key, value))
            return strdup (value);
    }
    zcert_t *cert = lh_cert_load (value, false, error_p);
    if (!cert)
        return NULL;
    char *key = strdup (zcert_public_txt (cert));
    zcert_destroy (&cert);
    return key;
}


//  --------------------------------------------------------------------------
//  Create the local certificate set where missing

int
lh_cert_ensure_local (const char *dir, char **error_p)
{
    static const char *local [][2] = {
        { "broker", "broker" }, { "admin", "admin" }, { "tap", "tap" },
        { "node", "actor" }, { "gateway", "gateway" }, { "mcp", "mcp" }
    };
    char *allow = zsys_sprintf ("%s/allow", dir);
    int rc = 0;
    if (zsys_dir_create ("%s", allow) != 0) {
        *error_p = zsys_sprintf ("cannot create '%s': %s", allow, strerror (errno));
        rc = -1;
    }
    chmod (dir, 0700);
    for (size_t index = 0; rc == 0 && index < sizeof local / sizeof local [0]; index++) {
        char *path = zsys_sprintf ("%s/%s.cert", dir, local [index][0]);
        bool present = zsys_file_exists (path);
        free (path);
        if (present)
            continue;
        bool server = streq (local [index][1], "broker");
        rc = lh_cert_create (dir, local [index][0], local [index][1], S_LOCAL_DAYS,
                             server? NULL: allow, error_p);
        if (rc == 0)
            lh_info ("certs", NULL, "created %s/%s.cert (role %s)", dir,
                     local [index][0], local [index][1]);
    }
    free (allow);
    return rc;
}


//  --------------------------------------------------------------------------
//  The certificate directory: bus/certs, else DATA_DIR/certs

char *
lh_cert_dir (lh_config_t *config)
{
    const char *dir = lh_config_str (config, "bus/certs");
    if (*dir)
        return strdup (dir);
    return zsys_sprintf ("%s/certs", lh_config_str (config, "data/dir"));
}


//  --------------------------------------------------------------------------
//  An in-process certificate: role and grant as metadata (see lh_cert.h)

zcert_t *
lh_cert_inproc (const char *grant, const char *role)
{
    assert (grant && role);
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "role", "%s", role);
    zcert_set_meta (cert, "grant", "%s", grant);
    return cert;
}


//  --------------------------------------------------------------------------
//  Is an endpoint local: loopback tcp, ipc or inproc?

bool
lh_endpoint_is_local (const char *endpoint)
{
    if (!endpoint)
        return false;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return strncmp (endpoint, "ipc://", 6) == 0
            || strncmp (endpoint, "inproc://", 9) == 0;
    const char *host = endpoint + 6;
    return strncmp (host, "127.", 4) == 0
        || strncmp (host, "localhost:", 10) == 0
        || strncmp (host, "[::1]:", 6) == 0;
}


//  --------------------------------------------------------------------------
//  Build a process's bus link from config (see lh_cert.h)

int
lh_cert_link (lh_config_t *config, const char *endpoint,
              const char *default_name, const char *cert_path,
              const char *server_key, lh_link_t *link,
              zcert_t **cert_p, char **key_p, char **error_p)
{
    assert (config && endpoint && link && cert_p && key_p && error_p);
    memset (link, 0, sizeof *link);
    link->endpoint = endpoint;
    *cert_p = NULL;
    *key_p = NULL;
    if (strncmp (endpoint, "inproc://", 9) == 0)
        return 0;
    if (!lh_config_bool (config, "bus/curve") && !(cert_path && *cert_path)) {
        if (lh_config_bool (config, "bus/plain") && lh_endpoint_is_local (endpoint))
            return 0;
        *error_p = zsys_sprintf ("plain tcp to %s is refused: it needs bus/plain = true "
                                 "and a loopback endpoint (else keep bus/curve = true)",
                                 endpoint);
        return -1;
    }
    char *dir = lh_cert_dir (config);
    char *path = NULL;
    if (cert_path && *cert_path)
        path = strdup (cert_path);
    else
    if (*lh_config_str (config, "bus/cert"))
        path = strdup (lh_config_str (config, "bus/cert"));
    else
        path = zsys_sprintf ("%s/%s.cert", dir, default_name);
    zcert_t *cert = lh_cert_load (path, true, error_p);
    char *key = NULL;
    if (cert) {
        char *key_source = NULL;
        if (server_key && *server_key)
            key_source = strdup (server_key);
        else
        if (*lh_config_str (config, "bus/server_key"))
            key_source = strdup (lh_config_str (config, "bus/server_key"));
        else
            key_source = zsys_sprintf ("%s/broker.cert", dir);
        key = lh_cert_server_key (key_source, error_p);
        if (!key) {
            char *longer = zsys_sprintf ("server key: %s", *error_p);
            free (*error_p);
            *error_p = longer;
        }
        free (key_source);
    }
    free (path);
    free (dir);
    if (!cert || !key) {
        zcert_destroy (&cert);
        free (key);
        return -1;
    }
    *cert_p = cert;
    *key_p = key;
    link->cert = cert;
    link->server_key = key;
    return 0;
}


//  --------------------------------------------------------------------------
//  Create an allow set over a directory

lh_allow_t *
lh_allow_new (const char *dir)
{
    assert (dir);
    lh_allow_t *self = (lh_allow_t *) zmalloc (sizeof (lh_allow_t));
    assert (self);
    self->dir = strdup (dir);
    self->entries = zhashx_new ();
    assert (self->entries);
    zhashx_set_destructor (self->entries, (zhashx_destructor_fn *) zstr_free);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy an allow set

void
lh_allow_destroy (lh_allow_t **self_p)
{
    assert (self_p);
    lh_allow_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->entries);
    free (self->dir);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Is this directory entry a public certificate file?

static bool
s_is_public_cert (const char *name)
{
    size_t size = strlen (name);
    return name [0] != '.'
        && !(size > 7 && streq (name + size - 7, "_secret"));
}


//  --------------------------------------------------------------------------
//  Fingerprint of the directory: FNV-1a over each certificate file's name,
//  size, mtime and inode, order-independent (sum). Returns -1 if unreadable.

static int
s_fingerprint (lh_allow_t *self, uint64_t *fingerprint)
{
    DIR *handle = opendir (self->dir);
    if (!handle)
        return -1;
    uint64_t sum = 0x9e3779b97f4a7c15ULL;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (!s_is_public_cert (entry->d_name))
            continue;
        char *path = zsys_sprintf ("%s/%s", self->dir, entry->d_name);
        struct stat st;
        int rc = stat (path, &st);
        free (path);
        if (rc != 0 || !S_ISREG (st.st_mode))
            continue;
        uint64_t hash = 14695981039346656037ULL;
        for (const char *scan = entry->d_name; *scan; scan++) {
            hash ^= (uint8_t) *scan;
            hash *= 1099511628211ULL;
        }
        uint64_t fields [] = { (uint64_t) st.st_size, (uint64_t) st.st_mtim.tv_sec,
                               (uint64_t) st.st_mtim.tv_nsec, (uint64_t) st.st_ino };
        for (size_t index = 0; index < 4; index++) {
            hash ^= fields [index];
            hash *= 1099511628211ULL;
        }
        sum += hash;
    }
    closedir (handle);
    *fingerprint = sum;
    return 0;
}


//  --------------------------------------------------------------------------
//  Load every public certificate of the directory into a fresh table

static void
s_load (lh_allow_t *self)
{
    zhashx_purge (self->entries);
    DIR *handle = opendir (self->dir);
    if (!handle)
        return;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (!s_is_public_cert (entry->d_name))
            continue;
        char *path = zsys_sprintf ("%s/%s", self->dir, entry->d_name);
        struct stat st;
        zcert_t *cert = NULL;
        if (stat (path, &st) == 0 && S_ISREG (st.st_mode))
            cert = zcert_load (path);
        const char *name = cert? zcert_meta (cert, "name"): NULL;
        const char *role = cert? zcert_meta (cert, "role"): NULL;
        int64_t expires = cert? lh_cert_expires (cert): -1;
        if (!cert)
            lh_warn ("certs", NULL, "allow: %s is not a certificate: ignored", path);
        else
        if (!s_name_valid (name) || !s_role_valid (role) || expires < 0)
            lh_warn ("certs", NULL, "allow: %s lacks a valid name, role or "
                     "expires: ignored", path);
        else {
            lh_allow_entry_t *item = (lh_allow_entry_t *) zmalloc (sizeof (lh_allow_entry_t));
            assert (item);
            snprintf (item->key, sizeof item->key, "%s", zcert_public_txt (cert));
            snprintf (item->name, sizeof item->name, "%s", name);
            snprintf (item->role, sizeof item->role, "%s", role);
            snprintf (item->keyid, sizeof item->keyid, "%s", zcert_public_txt (cert));
            item->expires = expires;
            zhashx_update (self->entries, item->key, item);
        }
        zcert_destroy (&cert);
        free (path);
    }
    closedir (handle);
}


//  --------------------------------------------------------------------------
//  Reload the directory if it changed; 1 reloaded, 0 unchanged, -1 unreadable

int
lh_allow_refresh (lh_allow_t *self)
{
    assert (self);
    uint64_t fingerprint = 0;
    if (s_fingerprint (self, &fingerprint) != 0) {
        if (zhashx_size (self->entries) || !self->loaded) {
            zhashx_purge (self->entries);
            self->generation++;
        }
        self->loaded = false;
        return -1;
    }
    if (self->loaded && fingerprint == self->fingerprint)
        return 0;
    s_load (self);
    self->fingerprint = fingerprint;
    self->loaded = true;
    self->generation++;
    return 1;
}


//  --------------------------------------------------------------------------
//  Force the next refresh to reload

void
lh_allow_touch (lh_allow_t *self)
{
    assert (self);
    self->loaded = false;
}


//  --------------------------------------------------------------------------
//  Entry of a key, or NULL if absent or expired

const lh_allow_entry_t *
lh_allow_lookup (lh_allow_t *self, const char *key)
{
    assert (self);
    if (!key)
        return NULL;
    lh_allow_entry_t *entry = (lh_allow_entry_t *) zhashx_lookup (self->entries, key);
    if (entry && entry->expires && entry->expires <= (int64_t) time (NULL))
        return NULL;
    return entry;
}


//  --------------------------------------------------------------------------
//  Number of keys loaded

size_t
lh_allow_size (lh_allow_t *self)
{
    assert (self);
    return zhashx_size (self->entries);
}


//  --------------------------------------------------------------------------
//  Reload count

uint64_t
lh_allow_generation (lh_allow_t *self)
{
    assert (self);
    return self->generation;
}


//  --------------------------------------------------------------------------
//  Self test

void
lh_cert_test (bool verbose)
{
    printf (" * lh_cert: ");
    char template [] = "/tmp/lh-cert-test-XXXXXX";
    char *dir = mkdtemp (template);
    assert (dir);
    char *allow_dir = zsys_sprintf ("%s/allow", dir);
    char *error = NULL;

    //  Create: files, modes, metadata
    assert (lh_cert_create (dir, "alice", "client", 10, allow_dir, &error) == 0);
    char *secret = zsys_sprintf ("%s/alice.cert_secret", dir);
    struct stat st;
    assert (stat (secret, &st) == 0 && (st.st_mode & 0777) == 0600);
    zcert_t *cert = lh_cert_load (secret, true, &error);
    assert (cert);
    assert (streq (zcert_meta (cert, "name"), "alice"));
    assert (streq (zcert_meta (cert, "role"), "client"));
    assert (strlen (zcert_meta (cert, "keyid")) == LH_KEYID_SIZE);
    assert (lh_cert_expires (cert) > (int64_t) time (NULL) + 9 * 86400);
    char *alice_key = strdup (zcert_public_txt (cert));
    zcert_destroy (&cert);
    free (secret);

    //  Never overwritten; bad names and roles refused
    assert (lh_cert_create (dir, "alice", "client", 10, allow_dir, &error) == -1);
    assert (error && strstr (error, "exists"));
    zstr_free (&error);
    assert (lh_cert_create (dir, "a/b", "client", 10, NULL, &error) == -1);
    zstr_free (&error);
    assert (lh_cert_create (dir, "bob", "root", 10, NULL, &error) == -1);
    zstr_free (&error);

    //  A public cert without its secret is refused where a secret is needed
    char *allow_alice = zsys_sprintf ("%s/alice.cert", allow_dir);
    assert (lh_cert_load (allow_alice, true, &error) == NULL);
    zstr_free (&error);
    char *key = lh_cert_server_key (allow_alice, &error);
    assert (key && streq (key, alice_key));
    zstr_free (&key);
    key = lh_cert_server_key (alice_key, &error);
    assert (key && streq (key, alice_key));
    zstr_free (&key);

    //  Allow set: load, lookup, revoke by removing, add by a new file
    lh_allow_t *allow = lh_allow_new (allow_dir);
    assert (lh_allow_refresh (allow) == 1);
    assert (lh_allow_refresh (allow) == 0);
    const lh_allow_entry_t *entry = lh_allow_lookup (allow, alice_key);
    assert (entry && streq (entry->name, "alice") && streq (entry->role, "client"));
    assert (lh_allow_lookup (allow, "0000000000000000000000000000000000000000") == NULL);
    uint64_t generation = lh_allow_generation (allow);
    assert (lh_cert_create (dir, "bob", "actor", 0, allow_dir, &error) == 0);
    assert (lh_allow_refresh (allow) == 1);
    assert (lh_allow_size (allow) == 2);
    assert (lh_allow_generation (allow) > generation);
    assert (unlink (allow_alice) == 0);
    assert (lh_allow_refresh (allow) == 1);
    assert (lh_allow_lookup (allow, alice_key) == NULL);
    assert (lh_allow_size (allow) == 1);
    lh_allow_destroy (&allow);

    //  The local set
    char *local = zsys_sprintf ("%s/local", dir);
    assert (lh_cert_ensure_local (local, &error) == 0);
    assert (lh_cert_ensure_local (local, &error) == 0);
    char *local_allow = zsys_sprintf ("%s/allow", local);
    allow = lh_allow_new (local_allow);
    assert (lh_allow_refresh (allow) == 1);
    assert (lh_allow_size (allow) == 5);      //  admin, tap, node, gateway, mcp
    lh_allow_destroy (&allow);
    free (local_allow);
    free (local);

    free (alice_key);
    free (allow_alice);
    free (allow_dir);
    zsys_dir_delete ("%s", dir);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    if (system (command) != 0)
        printf ("(could not remove %s) ", dir);
    free (command);
    printf ("OK\n");
}
