/*  =========================================================================
    lh_harness - the body shared by the test harnesses lh_storage_harness,
    lh_chat_harness, lh_data_harness and lh_vector_harness: a broker + some
    registered services in one process

    HARNESS [--broker ENDPOINT] [--services LIST] [--workers N]
            [--set key=value ...]

    Without --broker it starts a broker bound to tcp://127.0.0.1:* (plain);
    with --broker it only runs services against that broker (a second
    "node" process). LIST is comma-separated names from the launcher's
    registry (common/lh_registry.c), or "none"; a harness may restrict
    LIST to its default services. The broker takes broker/hb_ivl, hb_live
    and max_msg from the settings. When everything is up it prints one
    line on stdout:

        harness ready on tcp://127.0.0.1:PORT pid PID

    and runs until SIGTERM / SIGINT.

    HARNESS --sign METHOD HOST KEY BODY [QNAME QVALUE ...]

    (harnesses with .sign only) prints the path+query the s3 backend sends
    for KEY (path-style, bucket "bucket") and the Authorization header it
    computes (AKIDEXAMPLE, date 20150830T123600Z, us-east-1, s3), for
    test_s3_sigv4.py to compare with botocore.

    Each harness program includes this file, describes itself in an
    lh_harness_t and calls lh_harness_main with it.
    =========================================================================
*/

#ifndef LH_HARNESS_H_INCLUDED
#define LH_HARNESS_H_INCLUDED

#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_log.h"
#include "lh_registry.h"
#include "lh_sigv4.h"

#define S_MAX_SERVICES 8                //  runners one harness can hold

//  What tells one harness from another
typedef struct {
    const char *program;                //  name, for messages
    const char *services;               //  what runs without --services
    bool defaults_only;                 //  --services may name only those
    size_t max_services;                //  services one process runs, at most
    bool sign;                          //  takes --sign
    bool debug_log;                     //  log/level "debug" turns debug logging on
} lh_harness_t;

//  --------------------------------------------------------------------------
//  --sign: one request signed as the s3 backend signs it

static int
s_sign (int argc, char *argv [])
{
    if (argc < 6)
        return 2;
    const char *method = argv [2], *host = argv [3], *key = argv [4], *body = argv [5];
    char *encoded = lh_sigv4_encode (key, strlen (key), true);
    char *path = zsys_sprintf ("/bucket/%s", encoded);
    const char **pairs = (const char **) calloc ((size_t) argc, sizeof (char *));
    for (int index = 6; index + 1 < argc; index += 2) {
        pairs [index - 6] = argv [index];
        pairs [index - 5] = argv [index + 1];
    }
    char *query = lh_sigv4_query (pairs);
    char hash [65];
    lh_sigv4_sha256_hex (body, strlen (body), hash);
    const char *headers [] = { "host", host, "x-amz-content-sha256", hash,
                               "x-amz-date", "20150830T123600Z", NULL };
    lh_sigv4_t request = {
        .method = method, .path = path, .query = query, .headers = headers,
        .payload_hash = hash, .amz_date = "20150830T123600Z", .region = "us-east-1",
        .service = "s3", .access_key = "AKIDEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    };
    char *authorization = lh_sigv4_sign (&request);
    printf ("%s%s%s\n%s\n", path, *query? "?": "", query, authorization);
    free (authorization);
    free (query);
    free (pairs);
    free (path);
    free (encoded);
    return 0;
}

//  --------------------------------------------------------------------------
//  True if name is one of the comma-separated names in list

static bool
s_listed (const char *list, const char *name)
{
    size_t size = strlen (name);
    for (const char *item = list; item; item = strchr (item, ',')) {
        if (*item == ',')
            item++;
        if (strncmp (item, name, size) == 0 && (item [size] == ',' || item [size] == 0))
            return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  The harness that self describes. Services are looked up in the
//  launcher's registry; with self->defaults_only only those of
//  self->services are known.

static int
lh_harness_main (const lh_harness_t *self, int argc, char *argv [])
{
    assert (self->max_services <= S_MAX_SERVICES);
    const char *program = self->program;
    if (self->sign && argc > 1 && streq (argv [1], "--sign"))
        return s_sign (argc, argv);
    const char *broker_endpoint = NULL;
    const char *services = self->services;
    int workers = 0;
    char *error = NULL;
    lh_config_t *config = lh_config_load (NULL, &error);
    assert (config);
    for (int index = 1; index < argc; index++) {
        if (streq (argv [index], "--broker") && index + 1 < argc)
            broker_endpoint = argv [++index];
        else
        if (streq (argv [index], "--services") && index + 1 < argc)
            services = argv [++index];
        else
        if (streq (argv [index], "--workers") && index + 1 < argc)
            workers = atoi (argv [++index]);
        else
        if (streq (argv [index], "--set") && index + 1 < argc) {
            char *pair = strdup (argv [++index]);
            char *equals = strchr (pair, '=');
            if (!equals) {
                fprintf (stderr, "%s: --set wants key=value, got '%s'\n", program, pair);
                return 2;
            }
            *equals = 0;
            if (lh_config_set (config, pair, equals + 1)) {
                fprintf (stderr, "%s: bad setting '%s'\n", program, argv [index]);
                return 2;
            }
            free (pair);
        }
        else {
            fprintf (stderr, "usage: %s [--broker EP] [--services LIST] "
                             "[--workers N] [--set key=value ...]\n", program);
            return 2;
        }
    }
    if (self->debug_log && streq (lh_config_str (config, "log/level"), "debug"))
        lh_log_set_level (LH_LOG_DEBUG);
    zactor_t *broker = NULL;
    char *endpoint = NULL;
    if (broker_endpoint)
        endpoint = strdup (broker_endpoint);
    else {
        broker = zactor_new (lh_broker_actor, "harness");
        assert (broker);
        char *status, *detail;
        const char *settings [] = { "hb_ivl", "hb_live", "max_msg" };
        for (size_t index = 0; index < 3; index++) {
            char path [64];
            snprintf (path, sizeof (path), "broker/%s", settings [index]);
            char *value = zsys_sprintf ("%" PRId64, lh_config_int (config, path));
            zstr_sendx (broker, "CONFIGURE", settings [index], value, NULL);
            zsock_recv (broker, "ss", &status, &detail);
            zstr_free (&status);
            zstr_free (&detail);
            zstr_free (&value);
        }
        //  Its plain-tcp peers are the harness's workers and the test's
        //  peers (workers too, some of them): role actor
        zstr_sendx (broker, "CONFIGURE", "plain_role", "actor", NULL);
        zsock_recv (broker, "ss", &status, &detail);
        zstr_free (&status);
        zstr_free (&detail);
        zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
        zsock_recv (broker, "ss", &status, &detail);
        if (!status || !streq (status, "0")) {
            fprintf (stderr, "%s: broker bind failed: %s\n", program, detail? detail: "?");
            zstr_free (&status);
            zstr_free (&detail);
            zactor_destroy (&broker);
            lh_config_destroy (&config);
            return 1;
        }
        endpoint = detail;
        zstr_free (&status);
    }
    lh_link_t link = { .endpoint = endpoint };
    lh_service_runner_t *runners [S_MAX_SERVICES] = { NULL };
    size_t count = 0;
    char *list = strdup (services);
    char *save = NULL;
    int rc = 0;
    for (char *name = strtok_r (list, ",", &save); name; name = strtok_r (NULL, ",", &save)) {
        if (streq (name, "none"))
            continue;
        const lh_service_t *service = lh_registry_lookup (name);
        if (self->defaults_only && !s_listed (self->services, name))
            service = NULL;
        if (!service || count == self->max_services) {
            fprintf (stderr, "%s: unknown service '%s'\n", program, name);
            rc = 2;
            break;
        }
        runners [count] = lh_service_start (service, &link, config, workers);
        if (!runners [count]) {
            fprintf (stderr, "%s: %s did not start\n", program, name);
            rc = 1;
            break;
        }
        count++;
    }
    free (list);
    if (rc == 0) {
        printf ("harness ready on %s pid %d\n", endpoint, (int) getpid ());
        fflush (stdout);
        while (!zsys_interrupted)
            zclock_sleep (100);
    }
    //  Everything started is stopped, the broker last, before returning
    //  (an actor left running trips czmq's checks at exit)
    while (count > 0)
        lh_service_stop (&runners [--count]);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    free (endpoint);
    return rc;
}

#endif
