/*  =========================================================================
    lh_data_harness - broker + storaged + catalogd + ingestd + queryd in one
    process, for the integration tests of issue 7 (until the launcher's
    registry has ingestd and queryd)

    lh_data_harness [--broker ENDPOINT] [--services LIST] [--workers N]
                    [--set key=value ...]

    Without --broker it starts a broker bound to tcp://127.0.0.1:* (plain);
    with --broker it only runs services against that broker. LIST is
    comma-separated from storaged, catalogd, ingestd, queryd (default: all
    four), or "none". The broker takes broker/hb_ivl, hb_live and max_msg
    from the settings. When everything is up it prints one line on stdout:

        harness ready on tcp://127.0.0.1:PORT pid PID

    and runs until SIGTERM / SIGINT.
    =========================================================================
*/

#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_log.h"
#include "storaged.h"
#include "catalogd.h"
#include "ingestd.h"
#include "queryd.h"

#define S_MAX_SERVICES 8

//  --------------------------------------------------------------------------
//  The service of a name, or NULL

static const lh_service_t *
s_service (const char *name)
{
    return streq (name, "storaged")? &lh_storaged_service:
           streq (name, "catalogd")? &lh_catalogd_service:
           streq (name, "ingestd")? &lh_ingestd_service:
           streq (name, "queryd")? &lh_queryd_service: NULL;
}

int
main (int argc, char *argv [])
{
    const char *broker_endpoint = NULL;
    const char *services = "storaged,catalogd,ingestd,queryd";
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
                fprintf (stderr, "lh_data_harness: --set wants key=value, got '%s'\n", pair);
                return 2;
            }
            *equals = 0;
            if (lh_config_set (config, pair, equals + 1)) {
                fprintf (stderr, "lh_data_harness: bad setting '%s'\n", argv [index]);
                return 2;
            }
            free (pair);
        }
        else {
            fprintf (stderr, "usage: lh_data_harness [--broker EP] [--services LIST] "
                             "[--workers N] [--set key=value ...]\n");
            return 2;
        }
    }
    if (streq (lh_config_str (config, "log/level"), "debug"))
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
        zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
        zsock_recv (broker, "ss", &status, &detail);
        if (!status || !streq (status, "0")) {
            fprintf (stderr, "lh_data_harness: broker bind failed: %s\n", detail? detail: "?");
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
    for (char *name = strtok_r (list, ",", &save); name; name = strtok_r (NULL, ",", &save)) {
        if (streq (name, "none"))
            continue;
        const lh_service_t *service = s_service (name);
        if (!service || count == S_MAX_SERVICES) {
            fprintf (stderr, "lh_data_harness: unknown service '%s'\n", name);
            return 2;
        }
        runners [count] = lh_service_start (service, &link, config, workers);
        if (!runners [count]) {
            fprintf (stderr, "lh_data_harness: %s did not start\n", name);
            return 1;
        }
        count++;
    }
    free (list);
    printf ("harness ready on %s pid %d\n", endpoint, (int) getpid ());
    fflush (stdout);
    while (!zsys_interrupted)
        zclock_sleep (100);
    while (count > 0)
        lh_service_stop (&runners [--count]);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    free (endpoint);
    return 0;
}
