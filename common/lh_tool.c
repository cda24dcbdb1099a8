/*  =========================================================================
    lh_tool - command-line helpers shared by the bus tools
    =========================================================================
*/

#include "lh_tool.h"
#include "lh_proto.h"
#include "lh_cert.h"
#include <ctype.h>


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
//  A client connected as buscall connects; NULL after saying why

lh_client_t *
lh_tool_connect (lh_config_t *config, const char *program, zcert_t **cert_p, char **key_p)
{
    assert (config && program && cert_p && key_p);
    const char *endpoint = lh_config_str (config, "bus/endpoint");
    lh_link_t link;
    char *error = NULL;
    if (lh_cert_link (config, endpoint, "admin", NULL, NULL, &link, cert_p, key_p, &error) != 0) {
        fprintf (stderr, "%s: CURVE link to %s: %s (see bus/cert, bus/server_key, "
                 "`lakehouse certs`)\n", program, endpoint, error);
        free (error);
        return NULL;
    }
    char name [64];                     //  the client's name: program, dashed
    snprintf (name, sizeof (name), "%s", program);
    for (char *at = name; *at; at++)
        if (*at == ' ')
            *at = '-';
    lh_client_t *client = lh_client_new (&link, name);
    if (!client)
        fprintf (stderr, "%s: cannot reach the broker at %s\n", program, endpoint);
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
    if (verbose)
        printf ("\n   numbers, keys and options parsed");
    printf ("OK\n");
}
