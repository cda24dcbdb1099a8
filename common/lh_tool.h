/*  =========================================================================
    lh_tool - command-line helpers shared by the bus tools (buscall,
    bustap, busreplay)

        #define s_bad_usage(...) lh_tool_bad_usage ("bustap", __VA_ARGS__)
        if (lh_tool_number (value, 1, 100, &number))
            return s_bad_usage ("--count '%s': give 1 to 100", value);
        if (lh_tool_server_key (value, key))    //  char key [LH_UID_SIZE + 1]
            return s_bad_usage ("--server-key '%s': ...", value);
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

//  A bus client for a command-line tool, connected as buscall connects:
//  config bus/endpoint, CURVE with bus/cert (else CERTS/admin.cert) and
//  the broker's key (bus/server_key, else CERTS/broker.cert), unless
//  bus/curve is off. Returns NULL after printing why on stderr (prefixed
//  with program). *cert_p and *key_p are the caller's to destroy / free
//  after the client.
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
