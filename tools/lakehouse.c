/*  =========================================================================
    lakehouse - the launcher: one binary that hosts the broker and any set
    of actors, in one process or spread over several

    lakehouse [options] up [TAP]            broker + every actor, one process
    lakehouse [options] broker [TAP]        the broker alone (tcp + tap)
    lakehouse [options] node [--actors a,b] actors against a remote broker
    lakehouse [options] gateway             the HTTP gateway, against a remote broker
    lakehouse [options] ingest FILE --name N  upload a CSV (FILE, or - for stdin)
                                            into storaged and ingest it as dataset N,
                                            with a progress line (bytes, rows)
    lakehouse [options] corpus build --dataset NAME --id-column C --text-columns A,B
              --index NAME [--metadata-columns X,Y] [--batch N] [--model M]
                                            a vector corpus from a dataset (lh_corpus.h)
    lakehouse [options] playbook-lift [--seed S] [--workers N] [--queries Q]
                                            does playbook memory lift retrieval? (lh_lift.h)
    lakehouse [options] distill STAGE [...]  drive distilld: materialize, score,
                                            export, drift, run, replay, runs, report
                                            (actors/distilld/lh_distill_cli.h)
    lakehouse [options] workflow run FILE [--input NAME=TEXT | NAME:=JSON ...]
                                            run a workflow file (YAML or JSON) through
                                            workflowd, showing each node as it goes
    lakehouse [options] mcp                 an MCP server on stdin/stdout for agents
                                            (lh_mcp_stdio.h, docs/mcp.md)
    lakehouse config                        print every key with its default
    lakehouse [options] certs new NAME --role ROLE [--out DIR] [--allow DIR] [--days N]
                                            a new CURVE certificate (secret file 0600)
    lakehouse [options] certs init          the local set under CERTS (as `up` does)
    lakehouse [options] certs show FILE     a certificate's key and metadata

    Options (anywhere on the line):
    --config FILE       config file (else $LAKEHOUSE_CONFIG, else
                        ./conf/lakehouse.cfg if present, else defaults)
    --set KEY=VALUE     override one key (repeatable)
    --actors a,b        node: services to run (default: config actors/run)
    -v, --verbose       debug logging
    -h, --help          this text

    TAP (up and broker): read the broker's tap inside this process, as
    bustap does over tcp (common/lh_tap.c, docs/tools.md):
    --tap               print every routed message on stdout, one JSON line
                        each (bustap's format)
    --record FILE       record them to FILE (.lhrec, for busreplay)
    --service S, --op O, --trace T, --status LIST, --bodies, --pretty
                        bustap's filters and formats, with --tap or --record
    The broker then binds its tap also on BUS_INPROC-tap (bus/inproc plus
    "-tap"); inproc passes no ZAP handshake and needs no certificate: only
    this process can reach it. Without --tap/--record nothing changes.

    Security (docs/operations.md): with bus/curve (the default) every tcp
    endpoint of the broker is CURVE. `up` and `broker` create the local
    certificate set under CERTS (bus/certs, else DATA_DIR/certs) on first
    run: broker, admin, tap, node, gateway, mcp, with public copies of all but
    the broker's in CERTS/allow. `node` and `gateway` connect with
    bus/cert (default CERTS/node.cert, CERTS/gateway.cert) and the broker
    key bus/server_key (default CERTS/broker.cert). Every peer has a role
    (docs/broker.md, "Roles"): `up` grants its actors role actor and its
    gateway role gateway (plus an admin link for admin-token callers of
    the broker admin ops); peers of a plain-tcp endpoint get
    bus/plain_role.

    The client commands (ingest, corpus, playbook-lift, distill, workflow, mcp)
    and certs find the system as buscall does (common/lh_tool.h: --config,
    else $LAKEHOUSE_CONFIG, else ./conf/lakehouse.cfg, else the running
    instance recorded in LAKEHOUSE_HOME/current, else defaults); the client
    commands link with the admin certificate and say at once when the
    handshake is refused (mcp links with its own, bus/cert else
    CERTS/mcp.cert, and says so the same way).

    Each running command writes DATA_DIR/COMMAND.pid (up.pid, broker.pid,
    node.pid, gateway.pid) and removes it on a clean stop; `up` and
    `broker` also record themselves, once ready, in LAKEHOUSE_HOME/current
    ($LAKEHOUSE_HOME, else ~/.config/lakehouse; docs/tools.md) with their
    bound endpoints and absolute data dir, for the tools. SIGHUP makes
    the process reload everything it can: the broker's allow directory
    (also checked every broker/reload_ms) and the gateway's bearer tokens
    (also checked every gateway/token_check_ms).

    Readiness is announced on stdout, one line each, flushed, so a script
    can start the process and read the real endpoints (a tcp endpoint
    "tcp://127.0.0.1:*" or ":0" binds an ephemeral port):

        lakehouse: broker ready on tcp://127.0.0.1:41234 (tap tcp://127.0.0.1:41235)
        lakehouse: gateway ready on http://127.0.0.1:3110
        lakehouse: up (echo x2)
        lakehouse: node ready (echo x2)

    `up` prints its lines only once every actor has registered with the
    broker and the gateway listens, so the first request after them finds
    a worker. An empty gateway/listen runs no gateway. SIGINT or SIGTERM
    stops the gateway, the actors, then the broker, and exits 0. Exit
    codes: 0 ok, 1 failure at run time (bind, start), 2 usage or bad
    config.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_body.h"
#include "lh_config.h"
#include "lh_log.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_gateway.h"
#include "lh_trace.h"
#include "lh_registry.h"
#include "lh_cert.h"
#include "lh_ingest_upload.h"
#include "lh_json.h"
#include "lh_tap.h"
#include "lh_corpus.h"
#include "lh_lift.h"
#include "lh_mcp_stdio.h"
#include "lh_acl.h"
#include "lh_distill_cli.h"
#include "lh_wfcli.h"
#include "lh_tool.h"

#include <malloc.h>
#include <signal.h>
#include <pthread.h>
#include <malloc.h>

#define S_EXIT_FAILURE      1           //  failure at run time
#define S_EXIT_USAGE        2           //  bad command line or config
#define S_WORKERS_MAX       256         //  most workers per service
#define S_UP_READY_MS       10000       //  `up`: actors register within this
#define S_CHECK_IVL_MS      100         //  readiness poll interval
#define S_TAP_READY_MS      5000        //  in-process tap: subscribed within

//  Every declared config key, from the same X-macro table lh_config uses,
//  so we can tell "unknown key" from "wrong type" and know whether a
//  service has an actors/NAME/workers key.
typedef struct {
    const char *path;                   //  "broker/hb_ivl"
    const char *type;                   //  "STR", "INT", "BOOL"
} s_key_t;

#define LH_KEY(path, type, value, range, comment) { path, #type },
static const s_key_t s_keys [] = {
#include "lh_config_keys.h"
    { NULL, NULL }
};
#undef LH_KEY

//  The command line, parsed
typedef struct {
    const char *command;                //  up, broker, node, gateway, config
    const char *config_path;            //  --config, or NULL
    const char *actors;                 //  --actors, or NULL
    const char *role;                   //  certs new --role, or NULL
    const char *out;                    //  certs new --out, or NULL
    const char *allow;                  //  certs new --allow, or NULL
    const char *days;                   //  certs new --days, or NULL
    const char *name;                   //  ingest --name, or NULL
    zlist_t *inputs;                    //  workflow run --input values (borrowed)
    zlist_t *words;                     //  arguments after the command
    zlist_t *sets;                      //  "KEY=VALUE" strings (borrowed)
    lh_tap_t *tap;                      //  in-process tap reader's settings
    bool tap_print;                     //  --tap
    const char *record;                 //  --record, or NULL
    bool tap_filters;                   //  a tap filter or format was given
    bool verbose;                       //  -v
    bool help;                          //  -h
} s_args_t;

//  One service this process runs
typedef struct {
    const lh_service_t *service;        //  from the registry
    int workers;                        //  worker threads
    uint64_t baseline;                  //  workers the broker had before ours
    lh_service_runner_t *runner;        //  running, or NULL
} s_service_t;

//  The launcher
typedef struct {
    lh_config_t *config;                //  loaded config
    zactor_t *broker;                   //  broker actor, or NULL
    zactor_t *gateway;                  //  gateway actor, or NULL
    char *gateway_url;                  //  its bound URL, or NULL
    char *bus_endpoint;                 //  bound tcp endpoint, or NULL
    char *tap_endpoint;                 //  bound tap endpoint, or NULL
    zlist_t *services;                  //  s_service_t items, in start order
    zcert_t *cert;                      //  our certificate for a tcp link, or NULL
    char *server_key;                   //  the broker's key for it, or NULL
    zcert_t *admin_cert;                //  gateway: its admin link's certificate, or NULL
    char *admin_key;                    //  the broker's key for that link, or NULL
    zlist_t *inproc_certs;              //  in-process certificates we granted
    char *pid_file;                     //  DATA_DIR/COMMAND.pid we wrote, or NULL
    const char *config_path;            //  the config file loaded, or NULL
    lh_tool_link_t *tool_link;          //  a client command's link, or NULL
    sigset_t signals;                   //  SIGINT + SIGTERM + SIGHUP, blocked everywhere
    lh_tap_t *tap;                      //  in-process tap reader, or NULL
    zactor_t *tap_reader;               //  its actor while it runs, or NULL
    const char *record;                 //  --record, or NULL
    char *gateway_tap;                  //  the tap endpoint the gateway reads, or NULL
    zcert_t *gateway_tap_cert;          //  standalone gateway: its tap certificate, or NULL
    char *gateway_tap_key;              //  the broker's key for the tap, or NULL
    char *no_tap;                       //  why the gateway has no tap, or NULL
} s_self_t;


//  --------------------------------------------------------------------------
//  Print usage

static void
s_usage (FILE *file)
{
    fprintf (file,
        "usage: lakehouse [options] up | broker [--tap] [--record FILE] [bustap filters]\n"
        "       lakehouse [options] node [--actors a,b] | gateway | config\n"
        "       lakehouse [options] certs new NAME --role ROLE [--out DIR] [--allow DIR] [--days N]\n"
        "       lakehouse [options] certs init | certs show FILE\n"
        "       lakehouse [options] ingest FILE --name NAME\n"
        "       lakehouse [options] corpus build --dataset NAME --id-column C --text-columns A,B\n"
        "                 --index NAME [--metadata-columns X,Y] [--batch N] [--model M]\n"
        "       lakehouse [options] workflow run FILE [--input NAME=TEXT|NAME:=JSON ...]\n"
        "       lakehouse [options] playbook-lift [--seed S] [--workers N] [--queries Q]\n"
        "       lakehouse [options] mcp\n");
    lh_distill_cli_usage (file);
    fprintf (file,
        "\n"
        "  up                   broker + every actor (config actors/run) + gateway, one process\n"
        "  broker               the broker alone on bus/endpoint (+ tap on bus/tap)\n"
        "  node                 actors against the broker at bus/endpoint\n"
        "  gateway              the HTTP gateway (gateway/listen) against bus/endpoint\n"
        "  config               print every config key with its default\n"
        "  certs new NAME       a CURVE certificate: NAME.cert + NAME.cert_secret (0600)\n"
        "                       in --out (default CERTS), role actor|gateway|client|admin|tap|mcp,\n"
        "                       a public copy in --allow (default CERTS/allow when --out\n"
        "                       is not given), valid --days (default 365; 0 = never)\n"
        "  certs init           create the local set (broker admin tap node gateway mcp)\n"
        "  certs show FILE      print a certificate's public key and metadata\n"
        "  ingest FILE          upload a CSV (FILE, or - for stdin) into storaged and ingest\n"
        "                       it as dataset --name, with a progress line (docs/ingestd.md)\n"
        "  corpus build         read a dataset through queryd, embed each row's text columns\n"
        "                       (embedd) and add them to a vectord index, with progress\n"
        "  playbook-lift        measure recall cold and warm (use_playbook) on a generated\n"
        "                       roster against the running system; prints a markdown report\n"
        "  mcp                  an MCP server (protocol 2025-11-25) on stdin/stdout: the\n"
        "                       lakehouse as tools and resources for agents (docs/mcp.md)\n"
        "  distill STAGE        distilld's stages from the shell, progress on stderr,\n"
        "                       the reply as JSON on stdout (docs/distilld.md)\n"
        "  workflow run FILE    run a workflow (YAML or JSON) through workflowd with a\n"
        "                       live per-node view; exit 0 if it succeeded, 1 if not\n"
        "\n"
        "  --config FILE        config file (else $LAKEHOUSE_CONFIG, else\n"
        "                       ./conf/lakehouse.cfg if present, else defaults); ingest,\n"
        "                       corpus, playbook-lift, distill and workflow find the\n"
        "                       system as buscall does: else the running `lakehouse up`\n"
        "                       recorded in LAKEHOUSE_HOME/current (docs/tools.md)\n"
        "  --set KEY=VALUE      override one config key (repeatable)\n"
        "  --actors a,b         node: the services to run (default: actors/run)\n"
        "  -v, --verbose        debug logging\n"
        "  -h, --help           this text\n"
        "\n"
        "  up and broker read their own broker's tap in-process (inproc, no certificate):\n"
        "  --tap                print every routed message on stdout as a JSON line (as bustap)\n"
        "  --record FILE        record them to FILE (.lhrec, for busreplay)\n"
        "  --service S  --op O  --trace T  --status 200,404,5xx  --bodies  --pretty  --all\n"
        "                       bustap's filters and formats, with --tap or --record\n"
        "\n"
        "services:");
    for (size_t index = 0; index < lh_registry_size (); index++)
        fprintf (file, " %s", lh_registry_at (index)->name);
    fprintf (file, "\n");
}


//  --------------------------------------------------------------------------
//  Return the declared key of that path, or NULL

static const s_key_t *
s_key_lookup (const char *path)
{
    for (const s_key_t *key = s_keys; key->path; key++)
        if (streq (key->path, path))
            return key;
    return NULL;
}


//  --------------------------------------------------------------------------
//  Return a declared key's value as text, whatever its type (buffer holds
//  numbers and booleans; strings are returned borrowed)

static const char *
s_config_text (lh_config_t *config, const char *path, char *buffer, size_t size)
{
    const s_key_t *key = s_key_lookup (path);
    assert (key);
    if (streq (key->type, "INT"))
        snprintf (buffer, size, "%" PRId64, lh_config_int (config, path));
    else
    if (streq (key->type, "BOOL"))
        snprintf (buffer, size, "%s", lh_config_bool (config, path)? "true": "false");
    else
        return lh_config_str (config, path);
    return buffer;
}


//  --------------------------------------------------------------------------
//  Match option argv [*argn] as "--name VALUE" or "--name=VALUE". Returns
//  1 and the value (advancing *argn past it), 0 if argv [*argn] is not
//  this option, -1 if the value is missing.

static int
s_option_value (int argc, char *argv [], int *argn, const char *name,
                const char **value)
{
    const char *arg = argv [*argn];
    size_t length = strlen (name);
    if (strncmp (arg, name, length) != 0)
        return 0;
    if (arg [length] == '=') {
        *value = arg + length + 1;
        return 1;
    }
    if (arg [length] != '\0')
        return 0;
    if (*argn + 1 >= argc)
        return -1;
    *value = argv [++*argn];
    return 1;
}


//  --------------------------------------------------------------------------
//  Match one of bustap's filter/format options for the in-process tap.
//  Returns 1 (taken), 0 (not one), -1 after printing why.

static int
s_tap_option (s_args_t *args, int argc, char *argv [], int *argn)
{
    char *error = NULL;
    int rc = lh_tap_option (args->tap, argc, argv, argn, &error);
    if (rc < 0) {
        fprintf (stderr, "lakehouse: %s (see --help)\n", error);
        free (error);
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  Parse the command line. Returns 0, or -1 after printing why.

static int
s_args_parse (s_args_t *args, int argc, char *argv [])
{
    for (int argn = 1; argn < argc; argn++) {
        const char *arg = argv [argn];
        const char *value = NULL;
        int rc;
        if (streq (arg, "-v") || streq (arg, "--verbose"))
            args->verbose = true;
        else
        if (streq (arg, "-h") || streq (arg, "--help"))
            args->help = true;
        else
        if (streq (arg, "--tap"))
            args->tap_print = true;
        else
        if ((rc = s_option_value (argc, argv, &argn, "--record", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->record = value;
        }
        else
        if ((rc = s_tap_option (args, argc, argv, &argn)) != 0) {
            if (rc < 0)
                return -1;
            args->tap_filters = true;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--config", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->config_path = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--set", &value)) != 0) {
            if (rc < 0)
                goto missing;
            if (!strchr (value, '=')) {
                fprintf (stderr, "lakehouse: --set %s: expected KEY=VALUE\n", value);
                return -1;
            }
            zlist_append (args->sets, (void *) value);
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--actors", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->actors = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--name", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->name = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--input", &value)) != 0) {
            if (rc < 0)
                goto missing;
            zlist_append (args->inputs, (void *) value);
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--role", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->role = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--out", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->out = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--allow", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->allow = value;
        }
        else
        if ((rc = s_option_value (argc, argv, &argn, "--days", &value)) != 0) {
            if (rc < 0)
                goto missing;
            args->days = value;
        }
        else
        if (*arg == '-' && args->command
        &&  (streq (args->command, "corpus") || streq (args->command, "playbook-lift")))
            zlist_append (args->words, (void *) arg);   //  their own options
        else
        if (args->command && streq (args->command, "distill"))
            zlist_append (args->words, (void *) arg);   //  its own options: lh_distill_cli
        else
        if (*arg == '-') {
            fprintf (stderr, "lakehouse: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        else
        if (!args->command)
            args->command = arg;
        else
        if (streq (args->command, "certs") || streq (args->command, "ingest")
        ||  streq (args->command, "corpus") || streq (args->command, "playbook-lift")
        ||  streq (args->command, "workflow"))
            zlist_append (args->words, (void *) arg);
        else {
            fprintf (stderr, "lakehouse: unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        continue;
    missing:
        fprintf (stderr, "lakehouse: %s needs a value (see --help)\n", arg);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Free what the parsed command line holds

static void
s_args_destroy (s_args_t *args)
{
    zlist_destroy (&args->sets);
    zlist_destroy (&args->words);
    zlist_destroy (&args->inputs);
    lh_tap_destroy (&args->tap);
}


//  --------------------------------------------------------------------------
//  Is command one that acts as a client of a running system? They find
//  it as the bus tools do (lh_tool_config_load), write no pid file and
//  create no data dir.

static bool
s_client_command (const char *command)
{
    return command && (streq (command, "ingest") || streq (command, "corpus")
        || streq (command, "playbook-lift") || streq (command, "distill")
        || streq (command, "workflow") || streq (command, "mcp"));
}


//  --------------------------------------------------------------------------
//  Check the keys the launcher itself uses. Returns 0, or -1 and a
//  sentence naming the key in *error_p (caller frees).

static int
s_config_check (lh_config_t *config, char **error_p)
{
    const char *endpoint = lh_config_str (config, "bus/endpoint");
    if (strncmp (endpoint, "tcp://", 6) != 0 && strncmp (endpoint, "ipc://", 6) != 0) {
        *error_p = zsys_sprintf ("config bus/endpoint: '%s' is not a tcp:// "
                                 "or ipc:// endpoint", endpoint);
        return -1;
    }
    const char *tap = lh_config_str (config, "bus/tap");
    if (*tap && strncmp (tap, "tcp://", 6) != 0 && strncmp (tap, "ipc://", 6) != 0) {
        *error_p = zsys_sprintf ("config bus/tap: '%s' is not empty, a tcp:// "
                                 "or an ipc:// endpoint", tap);
        return -1;
    }
    const char *inproc = lh_config_str (config, "bus/inproc");
    if (strncmp (inproc, "inproc://", 9) != 0 || !inproc [9]) {
        *error_p = zsys_sprintf ("config bus/inproc: '%s' is not an inproc:// "
                                 "endpoint", inproc);
        return -1;
    }
    if (!*lh_config_str (config, "data/dir")) {
        *error_p = strdup ("config data/dir: must not be empty");
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Load the config: --config, else $LAKEHOUSE_CONFIG, else
//  ./conf/lakehouse.cfg if present, else defaults (the client commands and
//  certs: else the running instance, as the tools); then apply --set.
//  Returns NULL after printing why.

static lh_config_t *
s_config_load (s_args_t *args)
{
    char *error = NULL;
    lh_config_t *config = NULL;
    if (s_client_command (args->command) || streq (args->command, "certs"))
        config = lh_tool_config_load (args->config_path, "lakehouse");
    else {
        const char *path = args->config_path;
        if (!path) {
            const char *env = getenv ("LAKEHOUSE_CONFIG");
            if (env && *env)
                path = env;
            else
            if (zsys_file_exists ("conf/lakehouse.cfg"))
                path = "conf/lakehouse.cfg";
        }
        args->config_path = path;
        config = lh_config_load (path, &error);
        if (!config) {
            fprintf (stderr, "lakehouse: %s\n", error? error: "cannot load config");
            free (error);
        }
    }
    if (!config)
        return NULL;
    for (const char *set = (const char *) zlist_first (args->sets); set;
                     set = (const char *) zlist_next (args->sets)) {
        const char *equals = strchr (set, '=');
        char *key = strndup (set, equals - set);
        const char *value = equals + 1;
        if (lh_config_set (config, key, value) != 0) {
            char *why = lh_config_explain (key, value);
            fprintf (stderr, "lakehouse: --set %s: %s\n", set, why? why: "refused");
            free (why);
            free (key);
            lh_config_destroy (&config);
            return NULL;
        }
        free (key);
    }
    if (s_config_check (config, &error) != 0) {
        fprintf (stderr, "lakehouse: %s\n", error);
        free (error);
        lh_config_destroy (&config);
        return NULL;
    }
    return config;
}


//  --------------------------------------------------------------------------
//  Create a new launcher around a loaded config (taken)

static s_self_t *
s_self_new (lh_config_t **config_p)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    assert (self);
    self->config = *config_p;
    *config_p = NULL;
    self->services = zlist_new ();
    assert (self->services);
    self->inproc_certs = zlist_new ();
    assert (self->inproc_certs);
    sigemptyset (&self->signals);
    sigaddset (&self->signals, SIGINT);
    sigaddset (&self->signals, SIGTERM);
    sigaddset (&self->signals, SIGHUP);
    return self;
}


//  --------------------------------------------------------------------------
//  Write DATA_DIR/COMMAND.pid (up.pid, broker.pid, node.pid, gateway.pid)
//  so that `kill -HUP $(cat var/up.pid)` signals this instance only; it
//  is removed when the process ends. A file naming another live process
//  is replaced with a warning (two instances share the data dir).

static void
s_pid_file_write (s_self_t *self, const char *command)
{
    char *path = zsys_sprintf ("%s/%s.pid", lh_config_str (self->config, "data/dir"), command);
    FILE *file = fopen (path, "r");
    if (file) {
        long pid = 0;
        if (fscanf (file, "%ld", &pid) == 1 && pid > 0 && pid != (long) getpid ()
        &&  kill ((pid_t) pid, 0) == 0)
            lh_warn ("lakehouse", NULL, "%s names process %ld, which is still running: "
                     "two instances share this data dir; it now names this one", path, pid);
        fclose (file);
    }
    char *temp = zsys_sprintf ("%s.tmp", path);
    file = fopen (temp, "w");
    bool written = false;
    if (file) {
        written = fprintf (file, "%ld\n", (long) getpid ()) > 0;
        written = fclose (file) == 0 && written;
        written = written && rename (temp, path) == 0;
    }
    if (written) {
        self->pid_file = path;
        path = NULL;
    }
    else {
        lh_warn ("lakehouse", NULL, "cannot write %s: %s", path, strerror (errno));
        unlink (temp);
    }
    free (temp);
    free (path);
}


//  --------------------------------------------------------------------------
//  Remove our pid file, if it still names us (another instance sharing the
//  data dir may have taken it over)

static void
s_pid_file_remove (s_self_t *self)
{
    if (!self->pid_file)
        return;
    FILE *file = fopen (self->pid_file, "r");
    long pid = 0;
    if (file) {
        if (fscanf (file, "%ld", &pid) != 1)
            pid = 0;
        fclose (file);
    }
    if (pid == (long) getpid ())
        unlink (self->pid_file);
    zstr_free (&self->pid_file);
}


//  --------------------------------------------------------------------------
//  Stop the gateway, then every service (last started first)

static void
s_actors_stop (s_self_t *self)
{
    if (self->gateway) {
        lh_debug ("lakehouse", NULL, "stopping the gateway");
        zactor_destroy (&self->gateway);
    }
    s_service_t *entry;
    while ((entry = (s_service_t *) zlist_pop (self->services))) {
        if (entry->runner) {
            lh_debug ("lakehouse", NULL, "stopping %s", entry->service->name);
            lh_service_stop (&entry->runner);
        }
        free (entry);
    }
}


//  --------------------------------------------------------------------------
//  Stop the in-process tap reader, once the broker has routed what it had
//  read (a pipe round trip), and log its summary. Returns 0, or -1 if its
//  recording failed.

static int
s_tap_stop (s_self_t *self)
{
    if (!self->tap_reader)
        return 0;
    if (self->broker) {
        zstr_send (self->broker, "STATS");
        char *status = NULL, *detail = NULL;
        zsock_recv (self->broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
    }
    zactor_destroy (&self->tap_reader);
    char *summary = lh_tap_summary (self->tap);
    lh_info ("lakehouse", NULL, "tap: %s%s%s", summary, self->record? ", recorded to ": "",
             self->record? self->record: "");
    free (summary);
    return lh_tap_failed (self->tap)? -1: 0;
}


//  --------------------------------------------------------------------------
//  Stop every service (last started first), then the broker; destroy

static void
s_self_destroy (s_self_t **self_p)
{
    assert (self_p);
    s_self_t *self = *self_p;
    if (!self)
        return;
    s_actors_stop (self);
    s_tap_stop (self);
    zlist_destroy (&self->services);
    lh_tap_destroy (&self->tap);
    if (self->broker) {
        lh_debug ("lakehouse", NULL, "stopping the broker");
        zactor_destroy (&self->broker);
    }
    zcert_destroy (&self->cert);
    free (self->server_key);
    zcert_destroy (&self->admin_cert);
    free (self->admin_key);
    zcert_destroy (&self->gateway_tap_cert);
    free (self->gateway_tap_key);
    free (self->gateway_tap);
    free (self->no_tap);
    zcert_t *cert;
    while ((cert = (zcert_t *) zlist_pop (self->inproc_certs)))
        zcert_destroy (&cert);
    zlist_destroy (&self->inproc_certs);
    lh_tool_link_destroy (&self->tool_link);
    if (self->pid_file)
        lh_tool_record_remove ();
    s_pid_file_remove (self);
    free (self->bus_endpoint);
    free (self->tap_endpoint);
    free (self->gateway_url);
    lh_config_destroy (&self->config);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Send one command to the broker actor and read its "ss" answer. Returns
//  0 or -1; *detail_p (if not NULL) gets the detail string, caller frees.

static int
s_broker_command (s_self_t *self, const char *command, const char *arg1,
                  const char *arg2, char **detail_p)
{
    if (arg2)
        zstr_sendx (self->broker, command, arg1, arg2, NULL);
    else
        zstr_sendx (self->broker, command, arg1, NULL);
    char *status = NULL, *detail = NULL;
    if (zsock_recv (self->broker, "ss", &status, &detail) != 0) {
        if (detail_p)
            *detail_p = strdup ("no answer from the broker actor");
        return -1;
    }
    int rc = status && streq (status, "0")? 0: -1;
    free (status);
    if (detail_p)
        *detail_p = detail;
    else
        free (detail);
    return rc;
}


//  --------------------------------------------------------------------------
//  Give the broker the roles and the ACL, whichever way peers come in:
//  every acl/ key (checked here first, for a message naming the key), the
//  role of plain-tcp peers (bus/plain_role), and no role at all for an
//  in-process peer without a grant: this process grants each peer it
//  starts its role (s_inproc_link). Returns 0, or -1 (printed).

static int
s_broker_roles (s_self_t *self)
{
    lh_config_t *config = self->config;
    lh_acl_t *acl = lh_acl_new ();
    char *error = NULL;
    int rc = lh_acl_load (acl, config, &error);
    lh_acl_destroy (&acl);
    if (rc != 0) {
        fprintf (stderr, "lakehouse: %s\n", error);
        free (error);
        return -1;
    }
    for (const s_key_t *key = s_keys; rc == 0 && key->path; key++) {
        if (strncmp (key->path, "acl/", 4) != 0)
            continue;
        if (s_broker_command (self, "CONFIGURE", key->path,
                              lh_config_str (config, key->path), NULL) != 0) {
            fprintf (stderr, "lakehouse: config %s: refused by the broker\n", key->path);
            rc = -1;
        }
    }
    if (rc == 0
    &&  (s_broker_command (self, "CONFIGURE", "plain_role",
                           lh_config_str (config, "bus/plain_role"), NULL) != 0
    ||   s_broker_command (self, "CONFIGURE", "inproc_role", "", NULL) != 0)) {
        fprintf (stderr, "lakehouse: config bus/plain_role: refused by the broker\n");
        rc = -1;
    }
    return rc;
}


//  --------------------------------------------------------------------------
//  A link to this process's broker over bus/inproc for a peer of role:
//  the broker makes a grant for the role (GRANT) and the link carries it
//  in an in-process certificate (lh_cert_inproc), which lives until the
//  launcher ends. Returns 0, or -1 (printed).

static int
s_inproc_link (s_self_t *self, const char *role, lh_link_t *link)
{
    memset (link, 0, sizeof (*link));
    link->endpoint = lh_config_str (self->config, "bus/inproc");
    char *grant = NULL;
    if (!self->broker || s_broker_command (self, "GRANT", role, NULL, &grant) != 0) {
        fprintf (stderr, "lakehouse: the broker made no grant for role %s: %s\n", role,
                 grant? grant: "no broker in this process");
        free (grant);
        return -1;
    }
    link->cert = lh_cert_inproc (grant, role);
    zlist_append (self->inproc_certs, link->cert);
    free (grant);
    return 0;
}


//  --------------------------------------------------------------------------
//  Give the broker its certificate and allow directory (creating the local
//  set under CERTS on first run when broker/cert is the default), or check
//  that plain tcp was asked for explicitly. Returns 0, -1 on a run-time
//  failure, -2 on bad config (printed).

static int
s_broker_security (s_self_t *self)
{
    lh_config_t *config = self->config;
    if (s_broker_roles (self) != 0)
        return -2;
    if (!lh_config_bool (config, "bus/curve")) {
        if (!lh_config_bool (config, "bus/plain")) {
            fprintf (stderr, "lakehouse: config bus/curve = false needs bus/plain = true "
                     "(plain tcp, loopback only)\n");
            return -2;
        }
        lh_warn ("lakehouse", NULL, "bus/curve = false: the tcp endpoints are plain "
                 "(loopback only), neither authenticated nor encrypted");
        return 0;
    }
    char *dir = lh_cert_dir (config);
    char *error = NULL;
    const char *cert = lh_config_str (config, "broker/cert");
    const char *allow = lh_config_str (config, "broker/allow");
    char *cert_path = *cert? strdup (cert): zsys_sprintf ("%s/broker.cert", dir);
    char *allow_dir = *allow? strdup (allow): zsys_sprintf ("%s/allow", dir);
    int rc = 0;
    if (!*cert && lh_cert_ensure_local (dir, &error) != 0) {
        fprintf (stderr, "lakehouse: cannot create the certificates in %s: %s\n", dir, error);
        rc = -1;
    }
    char *detail = NULL;
    if (rc == 0 && s_broker_command (self, "CONFIGURE", "cert", cert_path, &detail) != 0) {
        fprintf (stderr, "lakehouse: config broker/cert: cannot load '%s' with its "
                 "secret key\n", cert_path);
        rc = -2;
    }
    zstr_free (&detail);
    if (rc == 0 && !zsys_file_exists (allow_dir))
        lh_warn ("lakehouse", NULL, "the allow directory %s does not exist: no key "
                 "is accepted until it does", allow_dir);
    if (rc == 0 && s_broker_command (self, "CONFIGURE", "allow", allow_dir, &detail) != 0) {
        fprintf (stderr, "lakehouse: config broker/allow: '%s' refused\n", allow_dir);
        rc = -2;
    }
    zstr_free (&detail);
    free (error);
    free (cert_path);
    free (allow_dir);
    free (dir);
    return rc;
}


//  --------------------------------------------------------------------------
//  After a bind that failed because the address is in use: name the
//  running instance that probably holds it, if one is recorded

static void
s_in_use_hint (const char *detail)
{
    if (!detail || !strstr (detail, "in use"))
        return;
    char *running = lh_tool_running (NULL);
    if (running)
        fprintf (stderr, "lakehouse: the running %s probably holds it: stop it first, "
                 "or give this one other endpoints (bus/endpoint, bus/tap, "
                 "gateway/listen)\n", running);
    free (running);
}


//  --------------------------------------------------------------------------
//  Start the broker actor: CONFIGURE it with every broker/KEY of the
//  config (the broker's settings are exactly that section's keys), bind
//  the inproc endpoint (when with_inproc), the tcp endpoint and the tap.
//  Returns 0, -1 on a run-time failure, -2 on bad config (printed).

static int
s_broker_start (s_self_t *self, bool with_inproc)
{
    self->broker = zactor_new (lh_broker_actor,
                               (void *) lh_config_str (self->config, "broker/name"));
    assert (self->broker);

    for (const s_key_t *key = s_keys; key->path; key++) {
        if (strncmp (key->path, "broker/", 7) != 0
        ||  streq (key->path, "broker/cert") || streq (key->path, "broker/allow"))
            continue;
        char buffer [32];
        char *detail = NULL;
        const char *value = s_config_text (self->config, key->path,
                                           buffer, sizeof (buffer));
        if (s_broker_command (self, "CONFIGURE", key->path + 7, value, &detail) != 0) {
            fprintf (stderr, "lakehouse: config %s: %s\n", key->path,
                     detail && *detail? detail: "refused by the broker");
            free (detail);
            return -2;
        }
        free (detail);
    }
    int security = s_broker_security (self);
    if (security != 0)
        return security;
    if (with_inproc) {
        const char *inproc = lh_config_str (self->config, "bus/inproc");
        char *detail = NULL;
        if (s_broker_command (self, "BIND", inproc, NULL, &detail) != 0) {
            fprintf (stderr, "lakehouse: cannot bind bus/inproc %s: %s\n", inproc, detail);
            free (detail);
            return -1;
        }
        free (detail);
    }
    const char *endpoint = lh_config_str (self->config, "bus/endpoint");
    char *detail = NULL;
    if (s_broker_command (self, "BIND", endpoint, NULL, &detail) != 0) {
        fprintf (stderr, "lakehouse: cannot bind bus/endpoint %s: %s\n", endpoint, detail);
        s_in_use_hint (detail);
        free (detail);
        return -1;
    }
    self->bus_endpoint = detail;

    const char *tap = lh_config_str (self->config, "bus/tap");
    if (*tap) {
        detail = NULL;
        if (s_broker_command (self, "TAP", tap, NULL, &detail) != 0) {
            fprintf (stderr, "lakehouse: cannot bind bus/tap %s: %s\n", tap, detail);
            s_in_use_hint (detail);
            free (detail);
            return -1;
        }
        self->tap_endpoint = detail;
    }
    lh_info ("lakehouse", NULL, "broker bound on %s, tap %s", self->bus_endpoint,
             self->tap_endpoint? self->tap_endpoint: "off");
    return 0;
}


//  --------------------------------------------------------------------------
//  Announce the broker's endpoints on stdout

static void
s_broker_announce (s_self_t *self)
{
    printf ("lakehouse: broker ready on %s (tap %s)\n", self->bus_endpoint,
            self->tap_endpoint? self->tap_endpoint: "off");
    fflush (stdout);
}


//  --------------------------------------------------------------------------
//  Record this instance for the tools (LAKEHOUSE_HOME/current), once its
//  endpoints are bound: what they find when no config names another

static void
s_record (s_self_t *self, const char *command)
{
    char *error = NULL;
    if (lh_tool_record_write (self->config, command, self->config_path, self->bus_endpoint,
                              self->tap_endpoint, self->gateway_url, &error) != 0) {
        lh_warn ("lakehouse", NULL, "tools will not find this instance by itself: %s", error);
        free (error);
    }
}


//  --------------------------------------------------------------------------
//  Wait until the tap reader has received something: a broker.ping over
//  the inproc bus until its copy shows (subscriptions reach an XPUB
//  asynchronously). Returns 0, or -1 after printing why.

static int
s_tap_wait (s_self_t *self)
{
    lh_link_t link;
    if (s_inproc_link (self, "actor", &link) != 0)
        return -1;
    lh_client_t *client = lh_client_new (&link, "lakehouse");
    int64_t deadline = zclock_mono () + S_TAP_READY_MS;
    int rc = -1;
    while (client && zclock_mono () < deadline) {
        lh_call_opts_t opts = { .timeout_ms = 1000 };
        lh_reply_t *reply = NULL;
        lh_client_call (client, "broker", "ping", NULL, 0, &opts, &reply);
        lh_reply_destroy (&reply);
        zstr_send (self->tap_reader, "SYNC");
        char *status = NULL, *received = NULL;
        if (zsock_recv (self->tap_reader, "ss", &status, &received) == 0
        &&  streq (status, "0") && atoll (received) > 0)
            rc = 0;
        zstr_free (&status);
        zstr_free (&received);
        if (rc == 0)
            break;
    }
    lh_client_destroy (&client);
    if (rc)
        fprintf (stderr, "lakehouse: the in-process tap showed nothing within %d ms\n",
                 S_TAP_READY_MS);
    return rc;
}


//  --------------------------------------------------------------------------
//  Start the in-process tap reader (--tap, --record): create the
//  recording, bind the broker's tap also on BUS_INPROC-tap (inproc: no
//  ZAP, no certificate; only this process reaches it), connect the reader
//  actor and wait until it reads. Returns 0, or -1 after printing why.

static int
s_tap_start (s_self_t *self)
{
    //  A name no other code in this process can guess: only the reader we
    //  start connects to the tap here
    zuuid_t *uuid = zuuid_new ();
    char *endpoint = zsys_sprintf ("%s-%s-tap", lh_config_str (self->config, "bus/inproc"),
                                   zuuid_str (uuid));
    zuuid_destroy (&uuid);
    char *detail = NULL;
    int rc = 0;
    if (self->record
    &&  lh_tap_record (self->tap, self->record, lh_config_str (self->config, "broker/name"),
                       endpoint, &detail) != 0) {
        fprintf (stderr, "lakehouse: --record: %s\n", detail);
        rc = -1;
    }
    zstr_free (&detail);
    if (rc == 0 && s_broker_command (self, "TAP", endpoint, NULL, &detail) != 0) {
        fprintf (stderr, "lakehouse: cannot bind the in-process tap %s: %s\n", endpoint, detail);
        rc = -1;
    }
    zstr_free (&detail);
    if (rc == 0) {
        self->tap_reader = zactor_new (lh_tap_actor, self->tap);
        assert (self->tap_reader);
        char *status = NULL;
        zsock_send (self->tap_reader, "ss", "CONNECT", endpoint);
        if (zsock_recv (self->tap_reader, "ss", &status, &detail) != 0 || !streq (status, "0")) {
            fprintf (stderr, "lakehouse: the tap reader did not start: %s\n",
                     detail? detail: "no answer");
            rc = -1;
        }
        zstr_free (&status);
        zstr_free (&detail);
    }
    if (rc == 0)
        rc = s_tap_wait (self);
    if (rc == 0)
        lh_info ("lakehouse", NULL, "reading the tap on %s%s%s", endpoint,
                 self->record? ", recording to ": "", self->record? self->record: "");
    free (endpoint);
    return rc;
}


//  --------------------------------------------------------------------------
//  Add the services named in a comma-separated list ("*" = every
//  registered service) to self->services, with their worker counts.
//  source names the list in messages. Returns 0, or -1 after printing why.

static int
s_services_select (s_self_t *self, const char *list, const char *source)
{
    if (streq (list, "*")) {
        for (size_t index = 0; index < lh_registry_size (); index++) {
            s_service_t *entry = (s_service_t *) zmalloc (sizeof (s_service_t));
            assert (entry);
            entry->service = lh_registry_at (index);
            zlist_append (self->services, entry);
        }
    }
    else {
        char *copy = strdup (list);
        assert (copy);
        char *saveptr = NULL;
        for (char *name = strtok_r (copy, ", ", &saveptr); name;
                   name = strtok_r (NULL, ", ", &saveptr)) {
            const lh_service_t *service = lh_registry_lookup (name);
            if (!service) {
                fprintf (stderr, "lakehouse: %s: no service named '%s' (known:",
                         source, name);
                for (size_t index = 0; index < lh_registry_size (); index++)
                    fprintf (stderr, " %s", lh_registry_at (index)->name);
                fprintf (stderr, ")\n");
                free (copy);
                return -1;
            }
            bool duplicate = false;
            for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
                 entry; entry = (s_service_t *) zlist_next (self->services))
                if (entry->service == service)
                    duplicate = true;
            if (duplicate)
                continue;
            s_service_t *entry = (s_service_t *) zmalloc (sizeof (s_service_t));
            assert (entry);
            entry->service = service;
            zlist_append (self->services, entry);
        }
        free (copy);
    }
    for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
         entry; entry = (s_service_t *) zlist_next (self->services)) {
        char key [LH_NAME_MAX + 32];
        snprintf (key, sizeof (key), "actors/%s/workers", entry->service->name);
        entry->workers = 1;
        if (s_key_lookup (key)) {
            int64_t workers = lh_config_int (self->config, key);
            if (workers < 1 || workers > S_WORKERS_MAX) {
                fprintf (stderr, "lakehouse: config %s: %" PRId64 " is not "
                         "between 1 and %d\n", key, workers, S_WORKERS_MAX);
                return -1;
            }
            entry->workers = (int) workers;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Describe the selected services as "echo x2, storaged x1" (caller frees)

static char *
s_services_summary (s_self_t *self)
{
    char *summary = strdup ("");
    for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
         entry; entry = (s_service_t *) zlist_next (self->services)) {
        char *longer = zsys_sprintf ("%s%s%s x%d", summary, *summary? ", ": "",
                                     entry->service->name, entry->workers);
        free (summary);
        summary = longer;
    }
    return summary;
}


//  --------------------------------------------------------------------------
//  Ask the broker how many workers each selected service has. If
//  as_baseline, store them as the baseline. Returns 1 when every service
//  has its baseline plus our workers, 0 when not yet (or no answer came),
//  -1 when the broker answered but not with a service list.

static int
s_services_check (s_self_t *self, lh_client_t *client, bool as_baseline)
{
    lh_call_opts_t opts = { .timeout_ms = 1000 };
    lh_reply_t *reply = NULL;
    if (lh_client_call (client, "broker", "services", NULL, 0, &opts, &reply) != 0) {
        lh_reply_destroy (&reply);
        return 0;
    }
    const msgpack_object *list = lh_obj_get (lh_reply_object (reply), "services");
    if (lh_reply_status (reply) != LH_ST_OK
    ||  !list || list->type != MSGPACK_OBJECT_ARRAY) {
        lh_debug ("lakehouse", NULL, "broker.services answered %u",
                  lh_reply_status (reply));
        lh_reply_destroy (&reply);
        return -1;
    }
    int ready = 1;
    for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
         entry; entry = (s_service_t *) zlist_next (self->services)) {
        uint64_t workers = 0;
        for (uint32_t index = 0; index < list->via.array.size; index++) {
            const msgpack_object *item = &list->via.array.ptr [index];
            const char *name;
            size_t size;
            if (lh_obj_str (item, "name", &name, &size)
            &&  size == strlen (entry->service->name)
            &&  memcmp (name, entry->service->name, size) == 0)
                lh_obj_uint (item, "workers", &workers);
        }
        if (as_baseline)
            entry->baseline = workers;
        else
        if (workers < entry->baseline + (uint64_t) entry->workers)
            ready = 0;
    }
    lh_reply_destroy (&reply);
    return ready;
}


//  --------------------------------------------------------------------------
//  SIGHUP: everything reloadable in this process reloads at once: the
//  broker's allow set (certificates added or removed) and the gateway's
//  bearer tokens. Signals are blocked in every thread and taken here by
//  sigwait, so the actors hear of it from us, by a pipe command.

static void
s_reload (s_self_t *self)
{
    char *detail = NULL;
    if (self->broker) {
        if (s_broker_command (self, "RELOAD", "", NULL, &detail) == 0)
            lh_info ("lakehouse", NULL, "SIGHUP: broker allow set reloaded (%s keys)", detail);
        else
            lh_warn ("lakehouse", NULL, "SIGHUP: broker allow set not reloaded: %s",
                     detail? detail: "no answer");
        zstr_free (&detail);
    }
    if (self->gateway) {
        zstr_send (self->gateway, "RELOAD");
        char *status = NULL;
        if (zsock_recv (self->gateway, "ss", &status, &detail) == 0 && streq (status, "0"))
            lh_info ("lakehouse", NULL, "SIGHUP: gateway tokens reloaded (%s)", detail);
        else
            lh_warn ("lakehouse", NULL, "SIGHUP: gateway tokens not reloaded: %s",
                     detail? detail: "no answer");
        zstr_free (&status);
        zstr_free (&detail);
    }
    if (!self->broker && !self->gateway)
        lh_info ("lakehouse", NULL, "SIGHUP: nothing to reload in this process");
}


//  --------------------------------------------------------------------------
//  Wait up to timeout_ms for SIGINT/SIGTERM (SIGHUP reloads and goes on
//  waiting). Returns true if a stop signal came.

static bool
s_signalled (s_self_t *self, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left < 0)
            left = 0;
        struct timespec timeout = {
            .tv_sec = left / 1000,
            .tv_nsec = (long) (left % 1000) * 1000000L
        };
        int signo = sigtimedwait (&self->signals, NULL, &timeout);
        if (signo == SIGHUP) {
            s_reload (self);
            continue;
        }
        if (signo > 0)
            lh_info ("lakehouse", NULL, "%s received, stopping", strsignal (signo));
        return signo > 0;
    }
}


//  --------------------------------------------------------------------------
//  Has the broker refused one of our services for good (a single-instance
//  service another process serves)? Prints which and why.

static bool
s_services_refused (s_self_t *self)
{
    for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
         entry; entry = (s_service_t *) zlist_next (self->services)) {
        const char *why = entry->runner? lh_service_refused (entry->runner): NULL;
        if (why) {
            fprintf (stderr, "lakehouse: the broker refused %s: %s\n",
                     entry->service->name, why);
            lh_error ("lakehouse", NULL, "the broker refused %s: %s; stopping",
                      entry->service->name, why);
            return true;
        }
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Start the selected services against link, then wait until the broker
//  lists their workers. timeout_ms < 0 waits until a signal. Returns 0
//  when ready, 1 if a signal came first, -1 on failure (printed).

static int
s_services_start (s_self_t *self, const lh_link_t *link, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    lh_client_t *client = lh_client_new (link, "lakehouse");
    if (client)
        s_services_check (self, client, true);

    for (s_service_t *entry = (s_service_t *) zlist_first (self->services);
         entry; entry = (s_service_t *) zlist_next (self->services)) {
        lh_debug ("lakehouse", NULL, "starting %s x%d", entry->service->name,
                  entry->workers);
        entry->runner = lh_service_start (entry->service, link, self->config,
                                          entry->workers);
        if (!entry->runner) {
            fprintf (stderr, "lakehouse: service %s failed to start (see log)\n",
                     entry->service->name);
            lh_client_destroy (&client);
            return -1;
        }
    }
    //  Readiness: poll broker.services until every worker is listed
    bool waiting_logged = false;
    int rc = -1;
    while (true) {
        if (s_services_refused (self)) {
            rc = -1;
            break;
        }
        if (!client)
            client = lh_client_new (link, "lakehouse");
        int check = client? s_services_check (self, client, false): 0;
        if (check == 1) {
            rc = 0;
            break;
        }
        if (check < 0) {
            //  The broker cannot tell us (no `services` op, or gone): do
            //  not wait on something that cannot be known
            lh_warn ("lakehouse", NULL, "broker.services did not answer; "
                     "not waiting for registration");
            rc = 0;
            break;
        }
        if (!waiting_logged) {
            lh_info ("lakehouse", NULL, "waiting for the broker at %s to list "
                     "our workers", link->endpoint);
            waiting_logged = true;
        }
        if (timeout_ms >= 0 && zclock_mono () >= deadline) {
            fprintf (stderr, "lakehouse: services did not register with the "
                     "broker within %d ms\n", timeout_ms);
            break;
        }
        if (s_signalled (self, S_CHECK_IVL_MS)) {
            rc = 1;
            break;
        }
    }
    lh_client_destroy (&client);
    return rc;
}


//  --------------------------------------------------------------------------
//  Serve until SIGINT or SIGTERM (returns 0), or until the broker refuses
//  one of our services for good (returns -1, printed). Every
//  actors/trim_ms the heap's free memory goes back to the system
//  (malloc_trim): dozens of threads share glibc's arenas, and the buffers
//  of a bulk load (a corpus build's embed replies and vectord adds, ~1 MB
//  each; storaged's mallopt keeps blocks up to a part off mmap) leave
//  tens of megabytes free inside them that nothing else would return.

static int
s_serve (s_self_t *self)
{
    int64_t trim_ms = lh_config_int (self->config, "actors/trim_ms");
    int64_t next_trim = zclock_mono () + trim_ms;
    while (!s_signalled (self, 500)) {
        if (s_services_refused (self))
            return -1;
        if (trim_ms > 0 && zclock_mono () >= next_trim) {
            malloc_trim (0);
            next_trim = zclock_mono () + trim_ms;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Wait for SIGINT or SIGTERM

static void
s_wait_for_signal (s_self_t *self)
{
    int signo = 0;
    while (sigwait (&self->signals, &signo) != 0 || signo == SIGHUP) {
        if (signo == SIGHUP)
            s_reload (self);
        signo = 0;
    }
    lh_info ("lakehouse", NULL, "%s received, stopping", strsignal (signo));
}


//  --------------------------------------------------------------------------
//  After the first signal: a second one kills at once, and a shutdown
//  stuck for 30 s ends by SIGALRM.

static void
s_shutdown_begin (s_self_t *self)
{
    signal (SIGINT, SIG_DFL);
    signal (SIGTERM, SIG_DFL);
    signal (SIGHUP, SIG_IGN);
    pthread_sigmask (SIG_UNBLOCK, &self->signals, NULL);
    alarm (30);
}


//  --------------------------------------------------------------------------
//  Announce the gateway's URL on stdout, if it runs

static void
s_gateway_announce (s_self_t *self)
{
    if (self->gateway_url) {
        printf ("lakehouse: gateway ready on %s\n", self->gateway_url);
        fflush (stdout);
    }
}


//  --------------------------------------------------------------------------
//  up: the gateway reads the broker's tap in-process (GET /v1/tap/stream),
//  on an inproc endpoint only this process knows, as `up --tap` does; not
//  when bus/tap is empty (no tap at all, then)

static void
s_gateway_tap_inproc (s_self_t *self)
{
    if (!*lh_config_str (self->config, "bus/tap")) {
        self->no_tap = strdup ("the broker's tap is off (bus/tap is empty)");
        return;
    }
    zuuid_t *uuid = zuuid_new ();
    char *endpoint = zsys_sprintf ("%s-%s-gwtap", lh_config_str (self->config, "bus/inproc"),
                                   zuuid_str (uuid));
    zuuid_destroy (&uuid);
    char *detail = NULL;
    if (s_broker_command (self, "TAP", endpoint, NULL, &detail) == 0)
        self->gateway_tap = endpoint;
    else {
        lh_warn ("lakehouse", NULL, "the gateway gets no tap stream: cannot bind %s: %s",
                 endpoint, detail);
        self->no_tap = zsys_sprintf ("the broker's tap could not be bound for the gateway: %s",
                                     detail);
        free (endpoint);
    }
    free (detail);
}


//  --------------------------------------------------------------------------
//  lakehouse gateway: the tap it reads for GET /v1/tap/stream is bus/tap,
//  with a role tap certificate (gateway/tap_cert, else CERTS/tap.cert when
//  it exists) unless the link is plain. Without one the stream answers
//  503 saying why; the gateway runs all the same.

static void
s_gateway_tap_remote (s_self_t *self)
{
    lh_config_t *config = self->config;
    const char *tap = lh_config_str (config, "bus/tap");
    if (!*tap) {
        self->no_tap = strdup ("bus/tap is empty: the gateway has no tap to read");
        return;
    }
    char *path = NULL;
    if (*lh_config_str (config, "gateway/tap_cert"))
        path = strdup (lh_config_str (config, "gateway/tap_cert"));
    else
    if (lh_config_bool (config, "bus/curve")) {
        char *dir = lh_cert_dir (config);
        path = zsys_sprintf ("%s/tap.cert", dir);
        free (dir);
        if (!zsys_file_exists (path)) {
            self->no_tap = zsys_sprintf ("no tap certificate: set gateway/tap_cert (a role "
                                         "tap certificate; %s does not exist)", path);
            free (path);
            return;
        }
    }
    lh_link_t link;
    char *error = NULL;
    if (lh_cert_link (config, tap, "tap", path, NULL, &link, &self->gateway_tap_cert,
                      &self->gateway_tap_key, &error) != 0) {
        self->no_tap = zsys_sprintf ("gateway/tap_cert: %s", error);
        free (error);
    }
    else
    if (self->gateway_tap_cert && (!zcert_meta (self->gateway_tap_cert, "role")
                                   || !streq (zcert_meta (self->gateway_tap_cert, "role"), "tap"))) {
        self->no_tap = zsys_sprintf ("gateway/tap_cert: '%s' is not a role tap certificate", path);
        zcert_destroy (&self->gateway_tap_cert);
    }
    else
        self->gateway_tap = strdup (tap);
    if (self->no_tap)
        lh_warn ("lakehouse", NULL, "the gateway gets no tap stream: %s", self->no_tap);
    free (path);
}


//  --------------------------------------------------------------------------
//  Start the gateway actor against link (its own role) and admin_link
//  (role admin, only for admin-token callers of the broker admin ops; may
//  be NULL); keep its URL. An empty gateway/listen starts nothing. Returns
//  0, or -1 after printing why.

static int
s_gateway_start (s_self_t *self, const lh_link_t *link, const lh_link_t *admin_link)
{
    if (!*lh_config_str (self->config, "gateway/listen"))
        return 0;
    lh_gateway_args_t args = { .config = self->config, .link = *link };
    if (admin_link)
        args.admin_link = *admin_link;
    args.tap.endpoint = self->gateway_tap;
    args.tap.server_key = self->gateway_tap_key;
    args.tap.cert = self->gateway_tap_cert;
    args.no_tap = self->no_tap;
    self->gateway = zactor_new (lh_gateway_actor, &args);
    assert (self->gateway);
    char *status = NULL, *detail = NULL;
    int rc = -1;
    if (zsock_recv (self->gateway, "ss", &status, &detail) == 0
    &&  streq (status, "0")) {
        self->gateway_url = detail;
        detail = NULL;
        rc = 0;
    }
    else {
        fprintf (stderr, "lakehouse: gateway did not start: %s\n",
                 detail && *detail? detail: "no reason given");
        s_in_use_hint (detail);
    }
    free (status);
    free (detail);
    return rc;
}


//  --------------------------------------------------------------------------
//  lakehouse up: broker on inproc + tcp (+ tap), every selected actor and
//  the gateway over inproc; with --tap/--record a tap reader too. Stops
//  the gateway, the actors, then the tap reader (the recording is complete
//  up to there); the broker goes last, in s_self_destroy.

static int
s_run_up (s_self_t *self)
{
    if (s_services_select (self, lh_config_str (self->config, "actors/run"),
                           "config actors/run") != 0)
        return S_EXIT_USAGE;
    int rc = s_broker_start (self, true);
    if (rc != 0)
        return rc == -2? S_EXIT_USAGE: S_EXIT_FAILURE;
    if (self->tap && s_tap_start (self) != 0)
        return S_EXIT_FAILURE;

    //  Every peer in this process gets its role from what we start it as
    lh_link_t link, gateway_link, admin_link;
    if (s_inproc_link (self, "actor", &link) != 0
    ||  s_inproc_link (self, "gateway", &gateway_link) != 0
    ||  s_inproc_link (self, "admin", &admin_link) != 0)
        return S_EXIT_FAILURE;
    rc = s_services_start (self, &link, S_UP_READY_MS);
    if (rc < 0)
        return S_EXIT_FAILURE;
    if (rc == 0) {
        if (*lh_config_str (self->config, "gateway/listen"))
            s_gateway_tap_inproc (self);
        if (s_gateway_start (self, &gateway_link, &admin_link) != 0)
            return S_EXIT_FAILURE;
        char *summary = s_services_summary (self);
        s_broker_announce (self);
        s_gateway_announce (self);
        s_record (self, "up");
        printf ("lakehouse: up (%s)\n", summary);
        fflush (stdout);
        lh_info ("lakehouse", NULL, "up (%s)", summary);
        free (summary);
        rc = s_serve (self);
    }
    s_shutdown_begin (self);
    s_actors_stop (self);
    int tap_rc = s_tap_stop (self);
    return rc < 0 || tap_rc != 0? S_EXIT_FAILURE: 0;
}


//  --------------------------------------------------------------------------
//  lakehouse broker: the broker alone, tcp endpoint + tap (with --tap or
//  --record also inproc, for the tap reader's readiness ping)

static int
s_run_broker (s_self_t *self)
{
    int rc = s_broker_start (self, self->tap != NULL);
    if (rc != 0)
        return rc == -2? S_EXIT_USAGE: S_EXIT_FAILURE;
    if (self->tap && s_tap_start (self) != 0)
        return S_EXIT_FAILURE;
    s_broker_announce (self);
    s_record (self, "broker");
    s_wait_for_signal (self);
    s_shutdown_begin (self);
    return s_tap_stop (self) == 0? 0: S_EXIT_FAILURE;
}


//  --------------------------------------------------------------------------
//  Check the handshake with the broker at bus/endpoint before a node or a
//  gateway starts, with its certificate (bus/cert, else CERTS/name.cert):
//  a refusal is said at once, naming the certificate and the running
//  instance, instead of workers waiting for a WELCOME that never comes.
//  Nothing answering is not an error: the broker may come later. Returns
//  0, or -1 after printing why.

static int
s_link_probe (s_self_t *self, const char *name)
{
    const char *cert = lh_config_str (self->config, "bus/cert");
    lh_tool_opts_t opts = { .cert = *cert? cert: NULL, .cert_name = name };
    int failure = 0;
    lh_tool_link_t *link = lh_tool_link_new (self->config, "lakehouse", &opts, &failure);
    int rc = link? lh_tool_link_probe (link, true): LH_TOOL_BAD_LINK;
    lh_tool_link_destroy (&link);
    if (rc == LH_TOOL_REFUSED || rc == LH_TOOL_BAD_LINK) {
        char *theirs = NULL;
        char *running = lh_tool_running (&theirs);
        char *ours = realpath (lh_config_str (self->config, "data/dir"), NULL);
        if (running && !(ours && streq (ours, theirs)))
            fprintf (stderr, "lakehouse: the running %s has its own certificates: "
                     "give its config (--config, LAKEHOUSE_CONFIG), or put ours in its "
                     "allow directory\n", running);
        free (running);
        free (theirs);
        free (ours);
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The link to a remote broker at bus/endpoint: CURVE with bus/cert (else
//  CERTS/default_name.cert) and bus/server_key, unless plain was asked for.
//  The certificate and key live in self until the end. Returns 0, or -1
//  after printing why.

static int
s_link_make (s_self_t *self, const char *default_name, lh_link_t *link)
{
    lh_config_t *config = self->config;
    const char *endpoint = lh_config_str (config, "bus/endpoint");
    char *error = NULL;
    if (lh_cert_link (config, endpoint, default_name, NULL, NULL, link,
                      &self->cert, &self->server_key, &error) != 0) {
        fprintf (stderr, "lakehouse: CURVE link to %s: %s (see bus/cert, "
                 "bus/server_key, `lakehouse certs`)\n", endpoint, error);
        free (error);
        return -1;
    }
    if (link->cert)
        lh_info ("lakehouse", NULL, "CURVE to %s as %s (key %.8s)", endpoint,
                 zcert_meta (link->cert, "name"), zcert_public_txt (link->cert));
    return s_link_probe (self, default_name);
}


//  --------------------------------------------------------------------------
//  A client command's bus client, linked as buscall links (lh_tool: the
//  admin certificate of the system the config names, the handshake
//  checked). Returns NULL after printing why.

static lh_client_t *
s_client (s_self_t *self, const char *name)
{
    lh_tool_opts_t opts = { NULL };
    int failure = 0;
    lh_tool_link_destroy (&self->tool_link);
    self->tool_link = lh_tool_link_new (self->config, "lakehouse", &opts, &failure);
    return self->tool_link? lh_tool_link_client (self->tool_link, name, &failure): NULL;
}


//  --------------------------------------------------------------------------
//  lakehouse certs new NAME --role ROLE [--out DIR] [--allow DIR] [--days N],
//  certs init, certs show FILE

static int
s_run_certs (s_args_t *args, lh_config_t *config)
{
    const char *verb = (const char *) zlist_first (args->words);
    const char *name = (const char *) zlist_next (args->words);
    char *dir = lh_cert_dir (config);
    char *error = NULL;
    int rc = 0;
    if (verb && streq (verb, "init") && !name) {
        if (lh_cert_ensure_local (dir, &error) != 0) {
            fprintf (stderr, "lakehouse: certs init: %s\n", error);
            rc = S_EXIT_FAILURE;
        }
        else
            printf ("lakehouse: local certificates in %s\n", dir);
    }
    else
    if (verb && streq (verb, "show") && name) {
        zcert_t *cert = lh_cert_load (name, false, &error);
        if (!cert) {
            fprintf (stderr, "lakehouse: certs show: %s\n", error);
            rc = S_EXIT_FAILURE;
        }
        else {
            printf ("public-key = \"%s\"\n", zcert_public_txt (cert));
            const char *keys [] = { "name", "role", "keyid", "expires" };
            for (size_t index = 0; index < 4; index++)
                printf ("%s = \"%s\"\n", keys [index],
                        zcert_meta (cert, keys [index])? zcert_meta (cert, keys [index]): "");
            zcert_destroy (&cert);
        }
    }
    else
    if (verb && streq (verb, "new") && name && !zlist_next (args->words)) {
        char *end = NULL;
        long days = args->days? strtol (args->days, &end, 10): 365;
        if (!args->role || (end && *end) || days < 0 || days > 36500) {
            fprintf (stderr, "lakehouse: certs new needs --role ROLE and a --days "
                     "between 0 and 36500\n");
            rc = S_EXIT_USAGE;
        }
        else {
            const char *out = args->out? args->out: dir;
            char *allow = NULL;
            if (args->allow)
                allow = strdup (args->allow);
            else
            if (!args->out && !streq (args->role, "broker"))
                allow = *lh_config_str (config, "broker/allow")
                      ? strdup (lh_config_str (config, "broker/allow"))
                      : zsys_sprintf ("%s/allow", dir);
            if (lh_cert_create (out, name, args->role, (int) days, allow, &error) != 0) {
                fprintf (stderr, "lakehouse: certs new: %s\n", error);
                rc = S_EXIT_FAILURE;
            }
            else {
                printf ("lakehouse: created %s/%s.cert and %s/%s.cert_secret (role %s)%s%s\n",
                        out, name, out, name, args->role,
                        allow? ", allowed in ": "", allow? allow: "");
            }
            free (allow);
        }
    }
    else {
        fprintf (stderr, "lakehouse: usage: certs new NAME --role ROLE [--out DIR] "
                 "[--allow DIR] [--days N] | certs init | certs show FILE\n");
        rc = S_EXIT_USAGE;
    }
    free (error);
    free (dir);
    return rc;
}


//  --------------------------------------------------------------------------
//  lakehouse node: the named actors against the broker at bus/endpoint

static int
s_run_node (s_self_t *self, const char *actors)
{
    const char *source = actors? "--actors": "config actors/run";
    if (!actors)
        actors = lh_config_str (self->config, "actors/run");
    if (s_services_select (self, actors, source) != 0)
        return S_EXIT_USAGE;
    if (zlist_size (self->services) == 0) {
        fprintf (stderr, "lakehouse: %s: no services to run\n", source);
        return S_EXIT_USAGE;
    }
    lh_link_t link;
    if (s_link_make (self, "node", &link) != 0)
        return S_EXIT_FAILURE;
    int rc = s_services_start (self, &link, -1);
    if (rc < 0)
        return S_EXIT_FAILURE;
    if (rc == 0) {
        char *summary = s_services_summary (self);
        printf ("lakehouse: node ready (%s)\n", summary);
        fflush (stdout);
        lh_info ("lakehouse", NULL, "node ready against %s (%s)",
                 link.endpoint, summary);
        free (summary);
        rc = s_serve (self);
    }
    s_shutdown_begin (self);
    return rc < 0? S_EXIT_FAILURE: 0;
}


//  --------------------------------------------------------------------------
//  lakehouse gateway: the HTTP gateway against the broker at bus/endpoint

static int
s_run_gateway (s_self_t *self)
{
    if (!*lh_config_str (self->config, "gateway/listen")) {
        fprintf (stderr, "lakehouse: config gateway/listen: empty, nothing to run\n");
        return S_EXIT_USAGE;
    }
    lh_link_t link;
    if (s_link_make (self, "gateway", &link) != 0)
        return S_EXIT_FAILURE;
    //  An admin link only with an admin certificate of its own
    lh_link_t admin_link = { NULL };
    const char *admin_cert = lh_config_str (self->config, "gateway/admin_cert");
    if (*admin_cert) {
        char *error = NULL;
        if (lh_cert_link (self->config, link.endpoint, "admin", admin_cert, NULL, &admin_link,
                          &self->admin_cert, &self->admin_key, &error) != 0) {
            fprintf (stderr, "lakehouse: config gateway/admin_cert: %s\n", error);
            free (error);
            return S_EXIT_USAGE;
        }
        const char *role = zcert_meta (self->admin_cert, "role");
        if (!role || !streq (role, "admin")) {
            fprintf (stderr, "lakehouse: config gateway/admin_cert: '%s' has role %s, "
                     "not admin\n", admin_cert, role? role: "(none)");
            return S_EXIT_USAGE;
        }
    }
    s_gateway_tap_remote (self);
    if (s_gateway_start (self, &link, admin_link.endpoint? &admin_link: NULL) != 0)
        return S_EXIT_FAILURE;
    s_gateway_announce (self);
    s_wait_for_signal (self);
    s_shutdown_begin (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Progress of `lakehouse ingest`: one line, rewritten in place on a tty

static void
s_ingest_progress (void *arg, uint64_t bytes, uint64_t rows)
{
    bool tty = *(bool *) arg;
    fprintf (stderr, "%s%.1f MiB, %" PRIu64 " rows uploaded%s",
             tty? "\r": "", bytes / 1048576.0, rows, tty? "": "\n");
    fflush (stderr);
}


//  --------------------------------------------------------------------------
//  lakehouse ingest FILE --name N: upload FILE into storaged in parts, call
//  ingestd, print its reply as JSON. Exit 0 on success, 1 on a refusal or
//  failure (the reason printed), as buscall does.

static int
s_run_ingest (s_self_t *self, const char *path, const char *name)
{
    lh_client_t *client = s_client (self, "ingest");
    if (!client)
        return S_EXIT_FAILURE;
    bool tty = isatty (STDERR_FILENO);
    lh_ingest_opts_t opts = { .upload = { .progress = s_ingest_progress, .progress_arg = &tty } };
    lh_reply_t *reply = NULL;
    char *error = NULL;
    int status = lh_ingest_file (client, path, name, &opts, &reply, &error);
    if (tty)
        fprintf (stderr, "\n");
    int rc = 0;
    if (reply) {
        size_t size;
        const void *body = lh_reply_body (reply, &size);
        char *text = body? lh_json_text_from_msgpack (body, size, NULL, NULL): NULL;
        if (status >= 200 && status < 300)
            printf ("%s\n", text? text: "{}");
        else {
            fprintf (stderr, "lakehouse: ingest: %d %s\n", status, text? text: "");
            rc = S_EXIT_FAILURE;
        }
        free (text);
        lh_reply_destroy (&reply);
    }
    else {
        fprintf (stderr, "lakehouse: ingest: %d %s\n", status, error? error: "failed");
        rc = S_EXIT_FAILURE;
    }
    free (error);
    lh_client_destroy (&client);
    return rc;
}


//  --------------------------------------------------------------------------
//  lakehouse distill STAGE [options]: drive distilld over the bus
//  (lh_distill_cli). Exit 0 on success, 1 on a refusal or failure, 2 on a
//  usage error.

static int
s_run_distill (s_self_t *self, zlist_t *words)
{
    lh_client_t *client = s_client (self, "distill");
    if (!client)
        return S_EXIT_FAILURE;
    int rc = lh_distill_cli_run (client, words, stdout, stderr);
    lh_client_destroy (&client);
    return rc;
}


//  --------------------------------------------------------------------------
//  lakehouse workflow run FILE: the run with a live per-node view
//  (actors/workflowd/lh_wfcli.c)

static int
s_run_workflow (s_self_t *self, const char *path, zlist_t *inputs)
{
    lh_client_t *client = s_client (self, "workflow");
    if (!client)
        return S_EXIT_FAILURE;
    int rc = lh_wfcli_run (client, path, inputs, stdout, isatty (STDOUT_FILENO));
    lh_client_destroy (&client);
    return rc == 2? S_EXIT_USAGE: rc;
}


int
main (int argc, char *argv [])
{
    //  Signals are taken synchronously by the main thread (sigwait): block
    //  them before any thread exists, so every thread inherits the mask
    //  and czmq's own handler is not needed.
    zsys_handler_set (NULL);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    //  A reader of stdout that goes away (lakehouse up --tap | head) is an
    //  EPIPE for the tap to handle, never the end of the whole system
    signal (SIGPIPE, SIG_IGN);
    //  glibc gives a thread that allocates while others do an arena of its
    //  own, up to 8 per core, and each arena keeps what was freed in it up
    //  to its trim threshold: with the dozens of threads of `lakehouse up`
    //  passing megabyte parts and ranges around, one 340 MB POST /v1/ingest
    //  peaked at 139 MiB. Two arenas per core: 103-115 MiB, the load mix
    //  a few per cent below glibc's default (one per core: 87 MiB, but the
    //  mix lost up to 30 % to threads queueing on arena locks; four per
    //  core: up to 130 MiB; docs/operations.md). MALLOC_ARENA_MAX in the
    //  environment still rules.
    if (!getenv ("MALLOC_ARENA_MAX")) {
        long cores = sysconf (_SC_NPROCESSORS_ONLN);
        mallopt (M_ARENA_MAX, cores > 0? 2 * (int) cores: 4);
    }

    s_args_t args = { .sets = zlist_new (), .words = zlist_new (), .inputs = zlist_new (),
                      .tap = lh_tap_new ("lakehouse") };
    assert (args.sets);
    int rc = s_args_parse (&args, argc, argv);
    if (rc == 0 && args.help) {
        s_usage (stdout);
        s_args_destroy (&args);
        return 0;
    }
    if (rc == 0 && !args.command) {
        s_usage (stderr);
        rc = -1;
    }
    if (rc == 0
    &&  !streq (args.command, "up") && !streq (args.command, "broker")
    &&  !streq (args.command, "node") && !streq (args.command, "gateway")
    &&  !streq (args.command, "config") && !streq (args.command, "certs")
    &&  !streq (args.command, "ingest") && !streq (args.command, "corpus")
    &&  !streq (args.command, "playbook-lift") && !streq (args.command, "distill")
    &&  !streq (args.command, "workflow") && !streq (args.command, "mcp")) {
        fprintf (stderr, "lakehouse: unknown command '%s' (see --help)\n", args.command);
        rc = -1;
    }
    if (rc == 0 && streq (args.command, "ingest")
    &&  (zlist_size (args.words) != 1 || !args.name)) {
        fprintf (stderr, "lakehouse: usage: lakehouse ingest FILE --name NAME\n");
        rc = -1;
    }
    if (rc == 0 && streq (args.command, "workflow")
    &&  (zlist_size (args.words) != 2 || !streq ((const char *) zlist_first (args.words), "run"))) {
        fprintf (stderr, "lakehouse: usage: lakehouse workflow run FILE [--input NAME=TEXT|NAME:=JSON ...]\n");
        rc = -1;
    }
    if (rc == 0 && zlist_size (args.inputs) && !streq (args.command, "workflow")) {
        fprintf (stderr, "lakehouse: --input is for `lakehouse workflow run`\n");
        rc = -1;
    }
    if (rc == 0 && args.actors && !streq (args.command, "node")) {
        fprintf (stderr, "lakehouse: --actors is for `lakehouse node`\n");
        rc = -1;
    }
    bool tapping = args.tap_print || args.record;
    if (rc == 0 && (tapping || args.tap_filters)
    &&  !streq (args.command, "up") && !streq (args.command, "broker")) {
        fprintf (stderr, "lakehouse: --tap, --record and the tap filters are for "
                 "`lakehouse up` and `lakehouse broker`\n");
        rc = -1;
    }
    if (rc == 0 && args.tap_filters && !tapping) {
        fprintf (stderr, "lakehouse: the tap filters (--service, --op, --trace, --status, "
                 "--bodies, --pretty) need --tap or --record\n");
        rc = -1;
    }
    if (rc != 0) {
        s_args_destroy (&args);
        return S_EXIT_USAGE;
    }
    if (streq (args.command, "config")) {
        lh_config_print_defaults (stdout);
        s_args_destroy (&args);
        return 0;
    }
    lh_config_t *config = s_config_load (&args);
    if (!config) {
        s_args_destroy (&args);
        return S_EXIT_USAGE;
    }
    const char *level = lh_config_str (config, "log/level");
    lh_log_set_level (args.verbose? LH_LOG_DEBUG:
                      streq (level, "debug")? LH_LOG_DEBUG:
                      streq (level, "warn")? LH_LOG_WARN:
                      streq (level, "error")? LH_LOG_ERROR: LH_LOG_INFO);
    if (streq (args.command, "certs")) {
        rc = s_run_certs (&args, config);
        lh_config_destroy (&config);
        s_args_destroy (&args);
        return rc;
    }
    if (streq (args.command, "mcp")) {
        rc = lh_mcp_stdio_run (config, STDIN_FILENO, STDOUT_FILENO);
        lh_config_destroy (&config);
        s_args_destroy (&args);
        return rc;
    }
    if (streq (args.command, "corpus") || streq (args.command, "playbook-lift")) {
        rc = streq (args.command, "corpus")? lh_corpus_command (config, args.words):
                                            lh_lift_command (config, args.words);
        lh_config_destroy (&config);
        s_args_destroy (&args);
        return rc;
    }

    const char *data_dir = lh_config_str (config, "data/dir");
    if (!s_client_command (args.command) && zsys_dir_create ("%s", data_dir) != 0) {
        fprintf (stderr, "lakehouse: cannot create data/dir '%s': %s\n",
                 data_dir, strerror (errno));
        lh_config_destroy (&config);
        s_args_destroy (&args);
        return S_EXIT_FAILURE;
    }
    //  Spans are exported by the processes that serve (docs/operations.md "Traces")
    bool serving = streq (args.command, "up") || streq (args.command, "broker")
                || streq (args.command, "node") || streq (args.command, "gateway");
    char *error = NULL;
    if (serving && lh_trace_start (config, &error)) {
        fprintf (stderr, "lakehouse: %s\n", error);
        free (error);
        lh_config_destroy (&config);
        s_args_destroy (&args);
        return S_EXIT_USAGE;
    }
    s_self_t *self = s_self_new (&config);
    self->config_path = args.config_path;
    if (!s_client_command (args.command))
        s_pid_file_write (self, args.command);
    if (tapping) {
        lh_tap_set_quiet (args.tap, !args.tap_print);
        if (args.tap_print)
            setvbuf (stdout, NULL, _IOLBF, 0);
        self->tap = args.tap;
        args.tap = NULL;
        self->record = args.record;
    }
    if (streq (args.command, "ingest"))
        rc = s_run_ingest (self, (const char *) zlist_first (args.words), args.name);
    else
    if (streq (args.command, "distill"))
        rc = s_run_distill (self, args.words);
    else
    if (streq (args.command, "workflow")) {
        zlist_first (args.words);
        rc = s_run_workflow (self, (const char *) zlist_next (args.words), args.inputs);
    }
    else
    if (streq (args.command, "up"))
        rc = s_run_up (self);
    else
    if (streq (args.command, "broker"))
        rc = s_run_broker (self);
    else
    if (streq (args.command, "gateway"))
        rc = s_run_gateway (self);
    else
        rc = s_run_node (self, args.actors);

    s_self_destroy (&self);
    lh_trace_stop ();                   //  every span maker has stopped
    s_args_destroy (&args);
    if (rc == 0 && !s_client_command (args.command))
        lh_info ("lakehouse", NULL, "stopped");
    return rc;
}
