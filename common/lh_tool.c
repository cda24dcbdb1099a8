/*  =========================================================================
    lh_tool - command-line helpers shared by the bus tools
    =========================================================================
*/

#include "lh_tool.h"
#include "lh_proto.h"
#include "lh_cert.h"
#include <ctype.h>
#include <limits.h>
#include <signal.h>


//  --------------------------------------------------------------------------
//  Complain about the command line; returns the usage exit code

int
lh_tool_bad_usage (const char *program, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: ", program);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n(%s --help for usage)\n", program);
    va_end (args);
    return LH_TOOL_EXIT_USAGE;
}


//  --------------------------------------------------------------------------
//  Parse an unsigned number in low..high; returns 0 or -1

int
lh_tool_number (const char *text, uint64_t low, uint64_t high, uint64_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long number = strtoull (text, &end, 10);
    if (!isdigit ((unsigned char) *text) || *end || errno || number < low || number > high)
        return -1;
    *value = number;
    return 0;
}


//  --------------------------------------------------------------------------
//  A public key as it is, or from the certificate file it comes from

int
lh_tool_server_key (const char *value, char *key)
{
    if (strlen (value) == LH_UID_SIZE) {
        memcpy (key, value, LH_UID_SIZE + 1);
        return 0;
    }
    if (!zsys_file_exists (value))
        return -1;
    zcert_t *cert = zcert_load (value);
    if (!cert)
        return -1;
    snprintf (key, LH_UID_SIZE + 1, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}


//  --------------------------------------------------------------------------
//  Match "--name VALUE" or "--name=VALUE"; 1 (taken), 0 (not this one),
//  -1 (no value)

int
lh_tool_option (int argc, char **argv, int *argn, const char *name, const char **value)
{
    const char *arg = argv [*argn];
    size_t length = strlen (name);
    if (strncmp (arg, name, length) != 0)
        return 0;
    if (arg [length] == '=') {
        *value = arg + length + 1;
        return 1;
    }
    if (arg [length] != 0)
        return 0;
    if (*argn + 1 >= argc)
        return -1;
    *value = argv [++*argn];
    return 1;
}


//  --------------------------------------------------------------------------
//  A path made absolute against the working directory (caller frees);
//  the real path when it exists

static char *
s_absolute (const char *path)
{
    char *real = realpath (path, NULL);
    if (real)
        return real;
    if (*path == '/')
        return strdup (path);
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof (cwd)))
        return strdup (path);
    while (strncmp (path, "./", 2) == 0)
        path += 2;
    return zsys_sprintf ("%s/%s", cwd, path);
}


//  --------------------------------------------------------------------------
//  Where the running instance is recorded; caller frees, NULL if nowhere

char *
lh_tool_home (void)
{
    const char *home = getenv ("LAKEHOUSE_HOME");
    if (home)
        return *home? strdup (home): NULL;
    const char *xdg = getenv ("XDG_CONFIG_HOME");
    if (xdg && *xdg == '/')
        return zsys_sprintf ("%s/lakehouse", xdg);
    const char *user = getenv ("HOME");
    if (user && *user)
        return zsys_sprintf ("%s/.config/lakehouse", user);
    return NULL;
}


//  --------------------------------------------------------------------------
//  The record file's path (caller frees), or NULL

static char *
s_record_path (void)
{
    char *home = lh_tool_home ();
    char *path = home? zsys_sprintf ("%s/current", home): NULL;
    free (home);
    return path;
}


//  The keys a record carries: what a tool needs to find the instance
static const char *s_record_keys [] = {
    "data/dir", "bus/certs", "bus/endpoint", "bus/tap", "bus/curve", "bus/plain",
    "bus/server_key", "broker/allow", "broker/name", "gateway/listen", NULL
};

//  A running instance, as its record says
typedef struct {
    zconfig_t *root;                    //  the record
    long pid;                           //  its process
    const char *command;                //  "up", "broker"
    const char *config;                 //  its config file, or ""
    const char *data_dir;               //  its data dir, absolute
    char *path;                         //  the record file
} s_record_t;

//  How the last config was found, for messages
static char s_source [PATH_MAX + 256] = "the built-in defaults";


//  --------------------------------------------------------------------------
//  Read the record of the running instance into record. Returns 0, or -1
//  when there is none, or its process no longer runs (or no longer owns
//  its data dir's pid file).

static int
s_record_read (s_record_t *record)
{
    memset (record, 0, sizeof (*record));
    record->path = s_record_path ();
    if (!record->path || !zsys_file_exists (record->path)) {
        zstr_free (&record->path);
        return -1;
    }
    record->root = zconfig_load (record->path);
    const char *pid = record->root? zconfig_get (record->root, "instance/pid", NULL): NULL;
    record->command = record->root? zconfig_get (record->root, "instance/command", ""): "";
    record->config = record->root? zconfig_get (record->root, "instance/config", ""): "";
    record->data_dir = record->root? zconfig_get (record->root, "data/dir", NULL): NULL;
    record->pid = pid? atol (pid): 0;
    bool alive = record->pid > 0 && record->data_dir && *record->command
              && (kill ((pid_t) record->pid, 0) == 0 || errno == EPERM);
    if (alive) {
        //  A recycled pid is not our instance: its pid file must name it
        char *pid_file = zsys_sprintf ("%s/%s.pid", record->data_dir, record->command);
        FILE *file = fopen (pid_file, "r");
        long owner = 0;
        if (!file || fscanf (file, "%ld", &owner) != 1 || owner != record->pid)
            alive = false;
        if (file)
            fclose (file);
        free (pid_file);
    }
    if (!alive) {
        zconfig_destroy (&record->root);
        zstr_free (&record->path);
        memset (record, 0, sizeof (*record));
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Apply a record's keys to a config. Returns 0, or -1 after printing why.

static int
s_record_apply (s_record_t *record, lh_config_t *config, const char *program)
{
    for (size_t index = 0; s_record_keys [index]; index++) {
        const char *value = zconfig_get (record->root, s_record_keys [index], NULL);
        if (value && lh_config_set (config, s_record_keys [index], value) != 0) {
            fprintf (stderr, "%s: %s: %s = '%s' is refused: remove the file (`lakehouse "
                     "up` writes it again)\n", program, record->path, s_record_keys [index],
                     value);
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Load a tool's config: the file the options or the directory name, the
//  running instance, or the defaults (see lh_tool.h)

lh_config_t *
lh_tool_config_load (const char *path, const char *program)
{
    assert (program);
    const char *how = "config";
    if (!path) {
        const char *env = getenv ("LAKEHOUSE_CONFIG");
        if (env && *env) {
            path = env;
            how = "config (LAKEHOUSE_CONFIG)";
        }
        else
        if (zsys_file_exists ("conf/lakehouse.cfg"))
            path = "conf/lakehouse.cfg";
    }
    s_record_t record;
    bool recorded = s_record_read (&record) == 0;
    bool same = false;
    if (recorded && path) {
        char *mine = realpath (path, NULL);
        same = mine && streq (mine, record.config);
        free (mine);
    }
    const char *load = path? path: recorded && *record.config? record.config: NULL;
    if (load && !path && !zsys_file_exists (load))
        load = NULL;                    //  its file has gone: the recorded keys hold
    char *error = NULL;
    lh_config_t *config = lh_config_load (load, &error);
    if (!config) {
        fprintf (stderr, "%s: %s\n", program, error? error: "cannot load the config");
        free (error);
    }
    else
    if (recorded && (same || !path) && s_record_apply (&record, config, program) != 0)
        lh_config_destroy (&config);
    if (path && !same)
        snprintf (s_source, sizeof (s_source), "%s %s", how, path);
    else
    if (recorded)
        snprintf (s_source, sizeof (s_source), "%s%s%s%sthe running `lakehouse %s` (pid %ld, "
                  "data dir %s, recorded in %s)", path? how: "", path? " ": "",
                  path? path: "", path? " with ": "", record.command, record.pid,
                  record.data_dir, record.path);
    else
        snprintf (s_source, sizeof (s_source), "the built-in defaults (no --config, "
                  "LAKEHOUSE_CONFIG, ./conf/lakehouse.cfg or running `lakehouse up` found)");
    zconfig_destroy (&record.root);
    free (record.path);
    return config;
}


//  --------------------------------------------------------------------------
//  How the last config was found (borrowed)

const char *
lh_tool_config_source (void)
{
    return s_source;
}


//  --------------------------------------------------------------------------
//  Record this instance in LAKEHOUSE_HOME/current

int
lh_tool_record_write (lh_config_t *config, const char *command, const char *config_path,
                      const char *bus_endpoint, const char *tap_endpoint,
                      const char *gateway_url, char **error_p)
{
    assert (config && command && bus_endpoint && error_p);
    char *home = lh_tool_home ();
    if (!home)
        return 0;                       //  records are off
    if (zsys_dir_create ("%s", home) != 0) {
        *error_p = zsys_sprintf ("cannot create %s: %s", home, strerror (errno));
        free (home);
        return -1;
    }
    zconfig_t *root = zconfig_new ("root", NULL);
    zconfig_set_comment (root, " The running Lakehouse that tools (buscall, bustap, busreplay,");
    zconfig_set_comment (root, " lakehouse ingest ...) find when no config names another one.");
    zconfig_set_comment (root, " Written by `lakehouse %s` once ready, removed when it stops.",
                         command);
    zconfig_putf (root, "instance/pid", "%ld", (long) getpid ());
    zconfig_put (root, "instance/command", command);
    char *config_real = config_path? s_absolute (config_path): NULL;
    zconfig_put (root, "instance/config", config_real? config_real: "");
    free (config_real);
    char *data_dir = s_absolute (lh_config_str (config, "data/dir"));
    zconfig_put (root, "data/dir", data_dir);
    free (data_dir);
    char *certs = lh_cert_dir (config);
    char *certs_real = s_absolute (certs);
    zconfig_put (root, "bus/certs", certs_real);
    free (certs_real);
    free (certs);
    zconfig_put (root, "bus/endpoint", bus_endpoint);
    zconfig_put (root, "bus/tap", tap_endpoint? tap_endpoint: "");
    zconfig_put (root, "bus/curve", lh_config_bool (config, "bus/curve")? "true": "false");
    zconfig_put (root, "bus/plain", lh_config_bool (config, "bus/plain")? "true": "false");
    const char *server_key = lh_config_str (config, "bus/server_key");
    char *key_real = *server_key && zsys_file_exists (server_key)? s_absolute (server_key): NULL;
    zconfig_put (root, "bus/server_key", key_real? key_real: server_key);
    free (key_real);
    const char *allow = lh_config_str (config, "broker/allow");
    char *allow_real = *allow? s_absolute (allow): NULL;
    zconfig_put (root, "broker/allow", allow_real? allow_real: "");
    free (allow_real);
    zconfig_put (root, "broker/name", lh_config_str (config, "broker/name"));
    zconfig_put (root, "gateway/listen", gateway_url? gateway_url: "");

    //  Written whole, then renamed over the old one
    char *path = zsys_sprintf ("%s/current", home);
    char *temp = zsys_sprintf ("%s/.current.%ld", home, (long) getpid ());
    int rc = zconfig_save (root, temp);
    if (rc == 0 && rename (temp, path) != 0)
        rc = -1;
    if (rc != 0) {
        *error_p = zsys_sprintf ("cannot write %s: %s", path, strerror (errno));
        remove (temp);
    }
    zconfig_destroy (&root);
    free (temp);
    free (path);
    free (home);
    return rc;
}


//  --------------------------------------------------------------------------
//  Remove the record if it names this process

void
lh_tool_record_remove (void)
{
    char *path = s_record_path ();
    zconfig_t *root = path && zsys_file_exists (path)? zconfig_load (path): NULL;
    const char *pid = root? zconfig_get (root, "instance/pid", NULL): NULL;
    if (pid && atol (pid) == (long) getpid ())
        remove (path);
    zconfig_destroy (&root);
    free (path);
}


//  A tool's link and what it found out
struct _lh_tool_link_t {
    char program [LH_NAME_MAX + 1];     //  who we are, in messages
    char *endpoint;                     //  broker or tap endpoint
    bool tap;                           //  a link to the tap
    bool given;                         //  the endpoint came from an option
    char flag [16];                     //  the option naming another, or ""
    char *cert_path;                    //  our certificate, absolute, or NULL (plain)
    char *key_source;                   //  where the server key came from, or NULL
    char *allow_dir;                    //  the broker's allow directory, for advice
    zcert_t *cert;                      //  our certificate, or NULL
    char *server_key;                   //  the broker's public key, or NULL
    zsock_t *watch;                     //  PAIR reading the tap socket's events, or NULL
    bool connected;                     //  the watched socket has been connected
    bool quiet;                         //  say nothing when nothing answers
};

#define S_HANDSHAKE_MS      5000        //  longest wait for a handshake's outcome
#define S_REFUSED_MS        1000        //  connection refused this long: unreachable


//  --------------------------------------------------------------------------
//  The default certificate's name under CERTS for a link with opts

static const char *
s_cert_name (const lh_tool_opts_t *opts)
{
    return opts->cert_name? opts->cert_name: opts->tap? "tap": "admin";
}


//  --------------------------------------------------------------------------
//  The link of a command-line tool (see lh_tool.h)

lh_tool_link_t *
lh_tool_link_new (lh_config_t *config, const char *program, const lh_tool_opts_t *opts,
                  int *failure_p)
{
    assert (config && program && opts && failure_p);
    lh_tool_link_t *self = (lh_tool_link_t *) zmalloc (sizeof (lh_tool_link_t));
    assert (self);
    snprintf (self->program, sizeof (self->program), "%s", program);
    self->tap = opts->tap;
    self->given = opts->endpoint != NULL;
    snprintf (self->flag, sizeof (self->flag), "%s", opts->flag? opts->flag: "");
    const char *endpoint = opts->endpoint? opts->endpoint
                         : lh_config_str (config, opts->tap? "bus/tap": "bus/endpoint");
    self->endpoint = strdup (endpoint);
    if (!*endpoint) {
        fprintf (stderr, "%s: no %s endpoint: config %s is empty (%s)\n", program,
                 opts->tap? "tap": "bus", opts->tap? "bus/tap": "bus/endpoint",
                 lh_tool_config_source ());
        *failure_p = LH_TOOL_BAD_LINK;
        lh_tool_link_destroy (&self);
        return NULL;
    }
    char *dir = lh_cert_dir (config);
    const char *allow = lh_config_str (config, "broker/allow");
    self->allow_dir = *allow? s_absolute (allow): zsys_sprintf ("%s/allow", dir);
    //  Our certificate: explicit means CURVE; else CURVE unless the config
    //  turns it off
    char *cert_path = NULL;
    if (opts->cert)
        cert_path = strdup (opts->cert);
    else
    if (lh_config_bool (config, "bus/curve")) {
        const char *configured = lh_config_str (config, opts->tap? "bus/tap_cert": "bus/cert");
        cert_path = *configured? strdup (configured)
                  : zsys_sprintf ("%s/%s.cert", dir, s_cert_name (opts));
    }
    if (cert_path) {
        self->cert_path = s_absolute (cert_path);
        free (cert_path);
        const char *key = opts->server_key? opts->server_key
                        : lh_config_str (config, "bus/server_key");
        self->key_source = *key? (strlen (key) == LH_UID_SIZE? strdup ("the key given")
                                                                : s_absolute (key))
                         : zsys_sprintf ("%s/broker.cert", dir);
    }
    free (dir);
    lh_link_t link;
    char *error = NULL;
    if (lh_cert_link (config, self->endpoint, s_cert_name (opts), self->cert_path,
                      opts->server_key, &link, &self->cert, &self->server_key, &error) != 0) {
        fprintf (stderr, "%s: cannot link to %s: %s\n"
                 "%s: the config: %s. Give --config FILE (or LAKEHOUSE_CONFIG) of the "
                 "running system, or --cert and --server-key; `lakehouse certs` makes "
                 "certificates (docs/tools.md \"Finding the system\")\n",
                 program, self->endpoint, error, program, lh_tool_config_source ());
        free (error);
        *failure_p = LH_TOOL_BAD_LINK;
        lh_tool_link_destroy (&self);
        return NULL;
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a link

void
lh_tool_link_destroy (lh_tool_link_t **self_p)
{
    assert (self_p);
    lh_tool_link_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->watch);
    zcert_destroy (&self->cert);
    free (self->server_key);
    free (self->endpoint);
    free (self->cert_path);
    free (self->key_source);
    free (self->allow_dir);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  The endpoint of a link

const char *
lh_tool_link_endpoint (lh_tool_link_t *self)
{
    assert (self);
    return self->endpoint;
}


//  --------------------------------------------------------------------------
//  The lh_link_t of a link (pointing into it)

static lh_link_t
s_link (lh_tool_link_t *self)
{
    lh_link_t link = { .endpoint = self->endpoint, .server_key = self->server_key,
                       .cert = self->cert };
    return link;
}


//  --------------------------------------------------------------------------
//  Say why a handshake was refused (event and value from the monitor)

static void
s_refused (lh_tool_link_t *self, int event, uint32_t value)
{
    const char *what = self->tap? "tap": "broker";
    if (!self->cert) {
        fprintf (stderr, "%s: the %s at %s refused a connection without CURVE: it "
                 "speaks CURVE (the config says bus/curve = false; %s). Use the config "
                 "of the running system, or give --cert and --server-key\n",
                 self->program, what, self->endpoint, lh_tool_config_source ());
        return;
    }
    const char *name = zcert_meta (self->cert, "name");
    const char *role = zcert_meta (self->cert, "role");
    char *mine = zsys_sprintf ("our certificate %s (name %s, role %s, key %.8s)",
                               self->cert_path, name? name: "?", role? role: "?",
                               zcert_public_txt (self->cert));
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        if (self->tap && !(role && streq (role, "tap")))
            fprintf (stderr, "%s: the tap at %s refused %s: the tap admits role tap only. "
                     "Use CERTS/tap.cert of the local set, or make one with `lakehouse "
                     "certs new NAME --role tap`\n", self->program, self->endpoint, mine);
        else
            fprintf (stderr, "%s: the %s at %s refused %s (ZAP %u): its key is not in the "
                     "broker's allow directory (%s), it has expired, or its role may not "
                     "connect there. Put its public file in the allow directory (`lakehouse "
                     "certs new NAME --role ROLE` does) and the broker takes it at once\n",
                     self->program, what, self->endpoint, mine, value, self->allow_dir);
    }
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
    &&  value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        fprintf (stderr, "%s: the %s at %s does not speak CURVE (a plain endpoint, bus/curve "
                 "= false there) and we offered %s: use the config of the running system\n",
                 self->program, what, self->endpoint, mine);
    else
        fprintf (stderr, "%s: the CURVE handshake with the %s at %s failed with %s: the "
                 "server key we used (%.8s, from %s) is not that %s's. It has new keys, or "
                 "another process listens there: give --server-key with its public "
                 "certificate (CERTS/broker.cert of the running system) or fix "
                 "bus/server_key\n", self->program, what, self->endpoint, mine,
                 self->server_key, self->key_source? self->key_source: "?", what);
    free (mine);
}


//  --------------------------------------------------------------------------
//  Start watching a socket's connection events (before it connects).
//  Returns the PAIR socket the events arrive on.

static zsock_t *
s_watch_start (zsock_t *sock)
{
    static int sequence = 0;
    char endpoint [64];
    snprintf (endpoint, sizeof (endpoint), "inproc://lh-tool-watch-%d-%d",
              (int) getpid (), ++sequence);
    int rc = zmq_socket_monitor (zsock_resolve (sock), endpoint,
                                 ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED
                               | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                               | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
                               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                               | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert (rc == 0);
    zsock_t *watch = zsock_new_pair (NULL);
    assert (watch);
    rc = zsock_connect (watch, "%s", endpoint);
    assert (rc == 0);
    return watch;
}


//  --------------------------------------------------------------------------
//  Read one event from a watch socket that has one. Returns 0 with the
//  event and its value, or -1.

static int
s_watch_event (zsock_t *watch, int *event_p, uint32_t *value_p)
{
    zmsg_t *msg = zmsg_recv (watch);
    zframe_t *frame = msg? zmsg_first (msg): NULL;
    int rc = -1;
    if (frame && zframe_size (frame) == 6) {
        uint16_t event;
        memcpy (&event, zframe_data (frame), 2);
        memcpy (value_p, zframe_data (frame) + 2, 4);
        *event_p = event;
        rc = 0;
    }
    zmsg_destroy (&msg);
    return rc;
}


//  --------------------------------------------------------------------------
//  Wait for the outcome of the handshake of the watched socket. Returns 0
//  when it succeeded, else LH_TOOL_REFUSED / LH_TOOL_UNREACHABLE after
//  printing why.

static int
s_watch_wait (lh_tool_link_t *self, zsock_t *watch)
{
    int64_t start = zclock_mono ();
    int64_t refused_since = 0;          //  first refused connect, 0 = none
    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        if (now - start >= S_HANDSHAKE_MS
        ||  (refused_since && !self->connected && now - refused_since >= S_REFUSED_MS))
            break;
        zsock_set_rcvtimeo (watch, 100);
        int event;
        uint32_t value;
        if (s_watch_event (watch, &event, &value) != 0)
            continue;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            return 0;
        if (event == ZMQ_EVENT_CONNECTED)
            self->connected = true;
        else
        if (event == ZMQ_EVENT_CONNECT_RETRIED && !refused_since)
            refused_since = now;
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        ||  event == ZMQ_EVENT_DISCONNECTED) {
            s_refused (self, event, value);
            return LH_TOOL_REFUSED;
        }
    }
    if (self->quiet && !self->connected)
        ;                               //  the caller waits for it
    else
    if (self->connected)
        fprintf (stderr, "%s: the %s at %s accepted the connection but finished no "
                 "handshake within %d ms\n", self->program, self->tap? "tap": "broker",
                 self->endpoint, S_HANDSHAKE_MS);
    else
    if (self->given)
        fprintf (stderr, "%s: nothing answers at %s (given with --%s)\n", self->program,
                 self->endpoint, self->tap? "tap": "broker");
    else
        fprintf (stderr, "%s: nothing answers at %s: is `lakehouse up` running? (the %s "
                 "endpoint comes from %s; %s names another)\n", self->program,
                 self->endpoint, self->tap? "tap": "bus", lh_tool_config_source (),
                 *self->flag? self->flag: "--config FILE (or LAKEHOUSE_CONFIG)");
    return LH_TOOL_UNREACHABLE;
}


//  --------------------------------------------------------------------------
//  A socket of type over the link, CURVE when the link has a certificate,
//  watched before it connects. Returns it, or NULL (said why).

static zsock_t *
s_socket (lh_tool_link_t *self, int type, zsock_t **watch_p)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    if (self->cert) {
        zcert_apply (self->cert, sock);
        zsock_set_curve_serverkey (sock, self->server_key);
    }
    *watch_p = s_watch_start (sock);
    if (zsock_connect (sock, "%s", self->endpoint) == -1) {
        fprintf (stderr, "%s: cannot connect to %s: %s\n", self->program, self->endpoint,
                 zmq_strerror (zmq_errno ()));
        zsock_destroy (watch_p);
        zsock_destroy (&sock);
    }
    return sock;
}


//  --------------------------------------------------------------------------
//  Check the handshake alone

int
lh_tool_link_probe (lh_tool_link_t *self, bool quiet_unreachable)
{
    assert (self);
    zsock_t *watch = NULL;
    zsock_t *probe = s_socket (self, ZMQ_DEALER, &watch);
    if (!probe)
        return LH_TOOL_UNREACHABLE;
    self->quiet = quiet_unreachable;
    int rc = s_watch_wait (self, watch);
    self->quiet = false;
    zsock_destroy (&probe);
    zsock_destroy (&watch);
    return rc;
}


//  --------------------------------------------------------------------------
//  The running instance, for messages; caller frees, NULL if none

char *
lh_tool_running (char **data_dir_p)
{
    if (data_dir_p)
        *data_dir_p = NULL;
    s_record_t record;
    if (s_record_read (&record) != 0)
        return NULL;
    if (data_dir_p)
        *data_dir_p = strdup (record.data_dir);
    char *text = zsys_sprintf ("`lakehouse %s` (pid %ld, data dir %s, bus %s)",
                               record.command, record.pid, record.data_dir,
                               zconfig_get (record.root, "bus/endpoint", "?"));
    zconfig_destroy (&record.root);
    free (record.path);
    return text;
}


//  --------------------------------------------------------------------------
//  A bus client over the link, after a handshake probe

lh_client_t *
lh_tool_link_client (lh_tool_link_t *self, const char *name, int *failure_p)
{
    assert (self && name && failure_p);
    //  The probe: a socket like the client's, watched from before its
    //  connect (the client's own socket is made inside lh_client_new)
    zsock_t *watch = NULL;
    zsock_t *probe = s_socket (self, ZMQ_DEALER, &watch);
    if (!probe) {
        *failure_p = LH_TOOL_BAD_LINK;
        return NULL;
    }
    int rc = s_watch_wait (self, watch);
    zsock_destroy (&probe);
    zsock_destroy (&watch);
    if (rc != 0) {
        *failure_p = rc;
        return NULL;
    }
    lh_link_t link = s_link (self);
    lh_client_t *client = lh_client_new (&link, name);
    if (!client) {
        fprintf (stderr, "%s: the broker at %s completed the handshake but did not "
                 "welcome us within 5 s\n", self->program, self->endpoint);
        *failure_p = LH_TOOL_UNREACHABLE;
    }
    return client;
}


//  --------------------------------------------------------------------------
//  A SUB socket on the tap, its handshake checked, still watched

zsock_t *
lh_tool_link_sub (lh_tool_link_t *self, int hwm, int *failure_p)
{
    assert (self && failure_p);
    assert (!self->watch);
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, hwm);
    zsock_set_subscribe (sub, "");
    zsock_set_linger (sub, 0);
    if (self->cert) {
        zcert_apply (self->cert, sub);
        zsock_set_curve_serverkey (sub, self->server_key);
    }
    self->watch = s_watch_start (sub);
    int rc = LH_TOOL_BAD_LINK;
    if (zsock_connect (sub, "%s", self->endpoint) == -1)
        fprintf (stderr, "%s: cannot connect to %s: %s\n", self->program, self->endpoint,
                 zmq_strerror (zmq_errno ()));
    else
        rc = s_watch_wait (self, self->watch);
    if (rc != 0) {
        *failure_p = rc;
        zsock_destroy (&sub);
        zsock_destroy (&self->watch);
    }
    return sub;
}


//  --------------------------------------------------------------------------
//  The socket of the watched socket's events

zsock_t *
lh_tool_link_watch (lh_tool_link_t *self)
{
    assert (self);
    return self->watch;
}


//  --------------------------------------------------------------------------
//  Take the events that have arrived; -1 after saying why when a new
//  handshake was refused

int
lh_tool_link_check (lh_tool_link_t *self)
{
    assert (self);
    if (!self->watch)
        return 0;
    while (zsock_events (self->watch) & ZMQ_POLLIN) {
        int event;
        uint32_t value;
        if (s_watch_event (self->watch, &event, &value) != 0)
            continue;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            s_refused (self, event, value);
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  A client connected as buscall connects; NULL after saying why

lh_client_t *
lh_tool_connect (lh_config_t *config, const char *program, zcert_t **cert_p, char **key_p)
{
    assert (config && program && cert_p && key_p);
    *cert_p = NULL;
    *key_p = NULL;
    lh_tool_opts_t opts = { NULL };
    int failure = 0;
    lh_tool_link_t *self = lh_tool_link_new (config, program, &opts, &failure);
    if (!self)
        return NULL;
    char name [64];                     //  the client's name: program, dashed
    snprintf (name, sizeof (name), "%s", program);
    for (char *at = name; *at; at++)
        if (*at == ' ')
            *at = '-';
    lh_client_t *client = lh_tool_link_client (self, name, &failure);
    //  The client borrows the certificate: it goes to the caller
    *cert_p = self->cert;
    *key_p = self->server_key;
    self->cert = NULL;
    self->server_key = NULL;
    lh_tool_link_destroy (&self);
    if (!client) {
        zcert_destroy (cert_p);
        zstr_free (key_p);
    }
    return client;
}


//  --------------------------------------------------------------------------
//  Self test: numbers, keys from text and from a certificate file

void
lh_tool_test (bool verbose)
{
    printf (" * lh_tool: ");
    uint64_t value = 7;
    assert (lh_tool_number ("42", 1, 100, &value) == 0 && value == 42);
    assert (lh_tool_number ("0", 1, 100, &value) == -1 && value == 42);
    assert (lh_tool_number ("101", 1, 100, &value) == -1);
    assert (lh_tool_number ("-1", 0, 100, &value) == -1);
    assert (lh_tool_number (" 5", 0, 100, &value) == -1);
    assert (lh_tool_number ("5x", 0, 100, &value) == -1);
    assert (lh_tool_number ("", 0, 100, &value) == -1);
    assert (lh_tool_number ("99999999999999999999999", 0, UINT64_MAX, &value) == -1);
    assert (lh_tool_number ("18446744073709551615", 0, UINT64_MAX, &value) == 0
            && value == UINT64_MAX);

    zcert_t *cert = zcert_new ();
    assert (cert);
    char key [LH_UID_SIZE + 1];
    assert (lh_tool_server_key (zcert_public_txt (cert), key) == 0);
    assert (streq (key, zcert_public_txt (cert)));
    char path [64];
    snprintf (path, sizeof (path), "/tmp/lh-tool-test-%d.cert", (int) getpid ());
    assert (zcert_save_public (cert, path) == 0);
    memset (key, 0, sizeof (key));
    assert (lh_tool_server_key (path, key) == 0);
    assert (streq (key, zcert_public_txt (cert)));
    remove (path);
    assert (lh_tool_server_key ("/nonexistent/lh-tool-test.cert", key) == -1);
    assert (lh_tool_server_key ("short", key) == -1);
    zcert_destroy (&cert);
    char *argv [] = { "x", "--index", "w", "--batch=5", "--indexes", "--model" };
    const char *option = NULL;
    int argn = 1;
    assert (lh_tool_option (6, argv, &argn, "--index", &option) == 1);
    assert (streq (option, "w") && argn == 2);
    argn = 3;
    assert (lh_tool_option (6, argv, &argn, "--batch", &option) == 1 && streq (option, "5"));
    argn = 4;
    assert (lh_tool_option (6, argv, &argn, "--index", &option) == 0);
    argn = 5;
    assert (lh_tool_option (6, argv, &argn, "--model", &option) == -1);

    //  The running instance's record: written, found from a directory
    //  with no config, applied to the config file it names, ignored for
    //  another file and once its process no longer owns the pid file (each
    //  self test runs in its own process: chdir and setenv stay here)
    char base [64];
    snprintf (base, sizeof (base), "/tmp/lh-tool-test-%d", (int) getpid ());
    char *home = zsys_sprintf ("%s/home", base);
    char *data = zsys_sprintf ("%s/var", base);
    char *elsewhere = zsys_sprintf ("%s/elsewhere", base);
    char *config_path = zsys_sprintf ("%s/up.cfg", base);
    char *other_path = zsys_sprintf ("%s/other.cfg", base);
    assert (zsys_dir_create ("%s", data) == 0);
    assert (zsys_dir_create ("%s", elsewhere) == 0);
    FILE *file = fopen (config_path, "w");
    assert (file);
    fprintf (file, "data\n    dir = \"./var\"\nbus\n    endpoint = \"tcp://127.0.0.1:*\"\n");
    fclose (file);
    file = fopen (other_path, "w");
    assert (file);
    fprintf (file, "log\n    level = \"warn\"\n");
    fclose (file);
    char *pid_file = zsys_sprintf ("%s/up.pid", data);
    file = fopen (pid_file, "w");
    assert (file);
    fprintf (file, "%d\n", (int) getpid ());
    fclose (file);
    setenv ("LAKEHOUSE_HOME", home, 1);
    unsetenv ("LAKEHOUSE_CONFIG");
    char *previous = getcwd (NULL, 0);
    assert (previous);
    assert (chdir (base) == 0);
    char *error = NULL;
    lh_config_t *config = lh_config_load (config_path, &error);
    assert (config);
    assert (lh_tool_record_write (config, "up", config_path, "tcp://127.0.0.1:41001",
                                  "tcp://127.0.0.1:41002", NULL, &error) == 0);
    lh_config_destroy (&config);
    char *record = zsys_sprintf ("%s/current", home);
    assert (zsys_file_exists (record));

    //  From a directory with no config: the record, absolute paths
    assert (chdir (elsewhere) == 0);
    config = lh_tool_config_load (NULL, "lh_tool_test");
    assert (config);
    assert (streq (lh_config_str (config, "bus/endpoint"), "tcp://127.0.0.1:41001"));
    assert (streq (lh_config_str (config, "bus/tap"), "tcp://127.0.0.1:41002"));
    assert (streq (lh_config_str (config, "data/dir"), data));
    char *certs = lh_cert_dir (config);
    assert (strncmp (certs, data, strlen (data)) == 0);
    free (certs);
    assert (strstr (lh_tool_config_source (), "running `lakehouse up`"));
    lh_config_destroy (&config);
    //  The same config file as the instance: the instance's values
    config = lh_tool_config_load (config_path, "lh_tool_test");
    assert (config && streq (lh_config_str (config, "data/dir"), data));
    lh_config_destroy (&config);
    //  Another config file: that file alone
    config = lh_tool_config_load (other_path, "lh_tool_test");
    assert (config && streq (lh_config_str (config, "bus/endpoint"), "tcp://127.0.0.1:5570"));
    assert (strstr (lh_tool_config_source (), other_path));
    lh_config_destroy (&config);
    //  Its process gone (the pid file no longer names it): defaults
    file = fopen (pid_file, "w");
    assert (file);
    fprintf (file, "1\n");
    fclose (file);
    config = lh_tool_config_load (NULL, "lh_tool_test");
    assert (config && streq (lh_config_str (config, "data/dir"), "./var"));
    assert (strstr (lh_tool_config_source (), "built-in defaults"));
    lh_config_destroy (&config);
    //  Removed only by the process it names
    lh_tool_record_remove ();
    assert (!zsys_file_exists (record));
    //  LAKEHOUSE_HOME empty: no records at all
    setenv ("LAKEHOUSE_HOME", "", 1);
    assert (lh_tool_home () == NULL);

    //  A link to nothing is said to be unreachable within a second or so
    config = lh_tool_config_load (other_path, "lh_tool_test");
    assert (config);
    lh_config_set (config, "bus/curve", "false");
    lh_tool_opts_t opts = { .endpoint = "tcp://127.0.0.1:1" };
    int failure = 0;
    lh_tool_link_t *link = lh_tool_link_new (config, "lh_tool_test", &opts, &failure);
    assert (link);
    int64_t start = zclock_mono ();
    lh_client_t *client = lh_tool_link_client (link, "lh_tool_test", &failure);
    assert (!client && failure == LH_TOOL_UNREACHABLE);
    assert (zclock_mono () - start < 3000);
    lh_tool_link_destroy (&link);
    //  A certificate that does not exist: a bad link, said at once
    opts.cert = "/nonexistent/lh-tool-test.cert";
    link = lh_tool_link_new (config, "lh_tool_test", &opts, &failure);
    assert (!link && failure == LH_TOOL_BAD_LINK);
    lh_config_destroy (&config);

    assert (chdir (previous) == 0);
    free (previous);
    zsys_dir_delete ("%s", elsewhere);
    remove (pid_file);
    zsys_dir_delete ("%s", data);
    zsys_dir_delete ("%s", home);
    remove (config_path);
    remove (other_path);
    zsys_dir_delete ("%s", base);
    free (record);
    free (pid_file);
    free (other_path);
    free (config_path);
    free (elsewhere);
    free (data);
    free (home);
    if (verbose)
        printf ("\n   numbers, keys and options parsed; the running instance found");
    printf ("OK\n");
}
