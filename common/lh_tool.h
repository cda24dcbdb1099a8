/*  =========================================================================
    lh_tool - command-line helpers shared by the bus tools (buscall,
    bustap, busreplay) and the launcher's client commands: options, the
    config and the running instance they find, the link to the broker

        #define s_bad_usage(...) lh_tool_bad_usage ("bustap", __VA_ARGS__)
        if (lh_tool_number (value, 1, 100, &number))
            return s_bad_usage ("--count '%s': give 1 to 100", value);
        if (lh_tool_server_key (value, key))    //  char key [LH_UID_SIZE + 1]
            return s_bad_usage ("--server-key '%s': ...", value);

        lh_config_t *config = lh_tool_config_load (args.config, "buscall");
        lh_tool_opts_t opts = { .endpoint = args.broker, .cert = args.cert };
        int failure;
        lh_tool_link_t *link = lh_tool_link_new (config, "buscall", &opts, &failure);
        lh_client_t *client = link? lh_tool_link_client (link, "buscall", &failure): NULL;
        ...
        lh_client_destroy (&client);
        lh_tool_link_destroy (&link);
    =========================================================================
*/

#ifndef LH_TOOL_H_INCLUDED
#define LH_TOOL_H_INCLUDED

#include <czmq.h>
#include "lh_config.h"
#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_TOOL_EXIT_USAGE  64          //  bad command line (sysexits EX_USAGE)

//  Print "PROGRAM: message" and "(PROGRAM --help for usage)" on stderr.
//  Returns LH_TOOL_EXIT_USAGE.
int
    lh_tool_bad_usage (const char *program, const char *format, ...) CHECK_PRINTF (2);

//  Parse an unsigned decimal number in low..high into *value (digits only,
//  nothing after them). Returns 0, or -1 and *value untouched.
int
    lh_tool_number (const char *text, uint64_t low, uint64_t high, uint64_t *value);

//  A CURVE public key from an option: 40 Z85 characters as they are, or
//  the certificate file they come from. key holds LH_UID_SIZE + 1 bytes.
//  Returns 0, or -1 if it is neither.
int
    lh_tool_server_key (const char *value, char *key);

//  Match argv [*argn] as the option "--name VALUE" or "--name=VALUE".
//  Returns 1 with *value (borrowed) and *argn on the value's word, 0 if
//  argv [*argn] is not this option, -1 if the value is missing.
int
    lh_tool_option (int argc, char **argv, int *argn, const char *name,
                    const char **value);

//  ---------------------------------------------------------------------
//  Finding the system: the config, and the running instance's record

//  Where `lakehouse up` and `lakehouse broker` record the running
//  instance: $LAKEHOUSE_HOME, else $XDG_CONFIG_HOME/lakehouse, else
//  $HOME/.config/lakehouse. Returns the directory (caller frees), or NULL
//  when LAKEHOUSE_HOME is set but empty (records off) or no home is known.
char *
    lh_tool_home (void);

//  Load a tool's config, first match wins:
//  1. path (--config), 2. $LAKEHOUSE_CONFIG, 3. ./conf/lakehouse.cfg if
//  present; when the running instance's record (LAKEHOUSE_HOME/current)
//  names that same file, its data dir, certificates and bound endpoints
//  replace the file's (they may be relative to the instance's directory,
//  or ephemeral ports); 4. else the running instance's record (its config
//  file and those keys); 5. else the built-in defaults. A record counts
//  only while its process runs (and its DATA_DIR/COMMAND.pid names it).
//  Returns the config, or NULL after printing why (prefixed with program).
lh_config_t *
    lh_tool_config_load (const char *path, const char *program);

//  How the last lh_tool_config_load found its config, for messages:
//  "config conf/lakehouse.cfg", "the running `lakehouse up` (pid 41, data
//  dir /srv/var, recorded in ~/.config/lakehouse/current)", ... (borrowed)
const char *
    lh_tool_config_source (void);

//  Record this instance in LAKEHOUSE_HOME/current (the launcher, once
//  ready): command ("up", "broker"), the config file it loaded (or NULL),
//  the bound endpoints (tap and gateway may be NULL), and from config the
//  data dir, certificate directory, CURVE settings and broker name, every
//  path made absolute. Replaces the file atomically. Returns 0, or -1 and
//  *error_p (caller frees); a launcher logs that and runs on.
int
    lh_tool_record_write (lh_config_t *config, const char *command,
                          const char *config_path, const char *bus_endpoint,
                          const char *tap_endpoint, const char *gateway_url,
                          char **error_p);

//  Remove LAKEHOUSE_HOME/current if it records this process
void
    lh_tool_record_remove (void);

//  ---------------------------------------------------------------------
//  Linking to the broker or its tap, with the handshake checked

//  What a tool's options override; NULL fields come from the config
typedef struct {
    const char *endpoint;               //  --broker / --tap, or NULL
    const char *cert;                   //  --cert, or NULL
    const char *server_key;             //  --server-key, or NULL
    bool tap;                           //  the tap (role tap) rather than the bus
    const char *cert_name;              //  default certificate under CERTS
                                        //  ("node", "gateway"), or NULL: admin / tap
    const char *flag;                   //  the tool's option naming another
                                        //  endpoint ("--broker"), or NULL: --config
} lh_tool_opts_t;

//  Why a link could not be made or used
#define LH_TOOL_BAD_LINK    1           //  the config or a certificate is wrong
#define LH_TOOL_REFUSED     2           //  the handshake was refused
#define LH_TOOL_UNREACHABLE 3           //  nothing answers at the endpoint

typedef struct _lh_tool_link_t lh_tool_link_t;

//  The link of a command-line tool to the broker (or, with opts->tap, its
//  tap): the endpoint (opts, else bus/endpoint or bus/tap), and unless the
//  config turns CURVE off, our certificate (opts->cert, else bus/cert or
//  bus/tap_cert, else CERTS/admin.cert or CERTS/tap.cert) and the broker's
//  key (opts->server_key, else bus/server_key, else CERTS/broker.cert).
//  Returns the link, or NULL and LH_TOOL_BAD_LINK in *failure_p after
//  printing why, naming the file and where the config came from.
lh_tool_link_t *
    lh_tool_link_new (lh_config_t *config, const char *program,
                      const lh_tool_opts_t *opts, int *failure_p);

//  Destroy a link (after the client or socket made from it); nulls the
//  caller's pointer
void
    lh_tool_link_destroy (lh_tool_link_t **self_p);

//  The endpoint of a link
const char *
    lh_tool_link_endpoint (lh_tool_link_t *self);

//  A bus client over the link, after a handshake probe: a refused
//  handshake (key not allowed, wrong server key, CURVE on one side only)
//  or nothing listening is said at once, naming the certificate and what
//  to do, instead of a silent 5 s wait. Returns the client (destroy it
//  before the link), or NULL and LH_TOOL_REFUSED / LH_TOOL_UNREACHABLE in
//  *failure_p after printing why.
lh_client_t *
    lh_tool_link_client (lh_tool_link_t *self, const char *name, int *failure_p);

//  Check the handshake alone (the launcher's node and gateway, before they
//  start): a DEALER over the link, watched until the handshake succeeds or
//  fails. Returns 0, LH_TOOL_REFUSED after printing why, or
//  LH_TOOL_UNREACHABLE (printed unless quiet_unreachable: a node may start
//  before its broker and wait for it).
int
    lh_tool_link_probe (lh_tool_link_t *self, bool quiet_unreachable);

//  The running instance recorded in LAKEHOUSE_HOME/current, for messages:
//  "`lakehouse up` (pid 41, data dir /srv/var, bus tcp://127.0.0.1:5570)",
//  or NULL when none runs. Caller frees; *data_dir_p (if not NULL) gets
//  its absolute data dir, or NULL, also the caller's to free.
char *
    lh_tool_running (char **data_dir_p);

//  A SUB socket on the tap over the link, subscribed to everything, with
//  its handshake checked as lh_tool_link_client does; the link keeps
//  watching it (lh_tool_link_watch). Returns the socket (the caller
//  destroys it before the link), or NULL and *failure_p after saying why.
zsock_t *
    lh_tool_link_sub (lh_tool_link_t *self, int hwm, int *failure_p);

//  The socket that carries the watched socket's connection events: add it
//  to a poller and call lh_tool_link_check when it is readable. NULL
//  before lh_tool_link_sub.
zsock_t *
    lh_tool_link_watch (lh_tool_link_t *self);

//  Take the connection events that have arrived. Returns 0, or -1 after
//  printing why when a new handshake was refused (after a broker restart
//  with other keys, or our certificate revoked): the tool should stop.
int
    lh_tool_link_check (lh_tool_link_t *self);

//  A bus client for a command-line tool, connected as buscall connects
//  (lh_tool_link_new + lh_tool_link_client with no options). Returns NULL
//  after printing why (prefixed with program). *cert_p and *key_p are the
//  caller's to destroy / free after the client.
lh_client_t *
    lh_tool_connect (lh_config_t *config, const char *program, zcert_t **cert_p,
                     char **key_p);

//  Self test of this class
void
    lh_tool_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
