/*  =========================================================================
    lh_gateway_harness - broker + echo + HTTP gateway in one process, for
    the gateway's integration tests

    lh_gateway_harness [--config FILE] [--set KEY=VALUE ...] [-v]

    Starts the broker on bus/inproc, the echo service (actors/echo/workers
    workers) and the gateway actor over the same inproc link, then prints
    one line, "ready URL" (or "failed: REASON" and exits 1 when the gateway
    refuses to start). It then reads commands on stdin, one per line, each
    answered with one line on stdout:

        stop echo           stop the echo workers (echo stays offered: 503)
        fill N MS           send N echo.sleep {"ms": MS} requests from a
                            bus client of its own, and wait until the broker
                            shows N - 1 of them queued ("ok" / "failed")
        reload              RELOAD the gateway's tokens ("ok DETAIL")

    Ends on SIGINT or SIGTERM (EOF on stdin only stops reading commands).
    =========================================================================
*/

#include "lh_broker.h"
#include "lh_gateway.h"
#include "lh_log.h"
#include "echo.h"
#include <poll.h>

//  Broker settings passed as CONFIGURE commands: setting, config key
static const char *s_broker_settings [][2] = {
    { "hb_ivl",         "broker/hb_ivl" },
    { "hb_live",        "broker/hb_live" },
    { "max_msg",        "broker/max_msg" },
    { "queue_max",      "broker/queue_max" },
    { "queue_bytes",    "broker/queue_bytes" },
    { "retry_after_ms", "broker/retry_after_ms" },
    { NULL, NULL }
};


//  --------------------------------------------------------------------------
//  Send a pipe command and read its "ss" answer. Returns 0 on "0".

static int
s_command (zactor_t *actor, const char *command, const char *arg1, const char *arg2,
           char **detail_p)
{
    if (arg2)
        zstr_sendx (actor, command, arg1, arg2, NULL);
    else
    if (arg1)
        zstr_sendx (actor, command, arg1, NULL);
    else
        zstr_send (actor, command);
    char *status = NULL, *detail = NULL;
    if (zsock_recv (actor, "ss", &status, &detail) != 0)
        return -1;
    int rc = status && streq (status, "0")? 0: -1;
    free (status);
    if (detail_p)
        *detail_p = detail;
    else
        free (detail);
    return rc;
}


//  --------------------------------------------------------------------------
//  Workers and queue depth the broker shows for a service (-1 on error)

static int
s_service_counts (lh_client_t *client, const char *name, uint64_t *workers, uint64_t *queued)
{
    lh_call_opts_t opts = { .timeout_ms = 1000 };
    lh_reply_t *reply = NULL;
    *workers = *queued = 0;
    if (lh_client_call (client, "broker", "services", NULL, 0, &opts, &reply) != 0
    ||  lh_reply_status (reply) != LH_ST_OK) {
        lh_reply_destroy (&reply);
        return -1;
    }
    const msgpack_object *list = lh_obj_get (lh_reply_object (reply), "services");
    for (uint32_t index = 0; list && list->type == MSGPACK_OBJECT_ARRAY
                             && index < list->via.array.size; index++) {
        const msgpack_object *item = &list->via.array.ptr [index];
        const char *text;
        size_t size;
        if (lh_obj_str (item, "name", &text, &size)
        &&  size == strlen (name) && memcmp (text, name, size) == 0) {
            lh_obj_uint (item, "workers", workers);
            lh_obj_uint (item, "queued", queued);
        }
    }
    lh_reply_destroy (&reply);
    return 0;
}


//  --------------------------------------------------------------------------
//  fill N MS: occupy echo's workers and queue so the next request gets 429

static int
s_fill (lh_client_t *client, int count, int ms)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_uint (pack, "ms", (uint64_t) ms);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = (uint32_t) ms + 2000 };
    for (int index = 0; index < count; index++)
        if (lh_client_send (client, "echo", "sleep", data, size, &opts) == 0) {
            lh_pack_destroy (&pack);
            return -1;
        }
    lh_pack_destroy (&pack);
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        uint64_t workers, queued;
        if (s_service_counts (client, "echo", &workers, &queued) == 0
        &&  queued >= (uint64_t) (count - 1))
            return 0;
        zclock_sleep (10);
    }
    return -1;
}


int
main (int argc, char *argv [])
{
    const char *config_path = NULL;
    zlist_t *sets = zlist_new ();
    for (int argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--config") && argn + 1 < argc)
            config_path = argv [++argn];
        else
        if (streq (argv [argn], "--set") && argn + 1 < argc)
            zlist_append (sets, argv [++argn]);
        else
        if (streq (argv [argn], "-v"))
            lh_log_set_level (LH_LOG_DEBUG);
        else {
            fprintf (stderr, "usage: lh_gateway_harness [--config FILE] [--set KEY=VALUE ...] [-v]\n");
            return 2;
        }
    }
    char *error = NULL;
    lh_config_t *config = lh_config_load (config_path, &error);
    if (!config) {
        fprintf (stderr, "lh_gateway_harness: %s\n", error);
        return 2;
    }
    for (char *set = (char *) zlist_first (sets); set; set = (char *) zlist_next (sets)) {
        char *equals = strchr (set, '=');
        if (!equals) {
            fprintf (stderr, "lh_gateway_harness: --set %s: expected KEY=VALUE\n", set);
            return 2;
        }
        *equals = 0;
        if (lh_config_set (config, set, equals + 1) != 0) {
            fprintf (stderr, "lh_gateway_harness: --set %s=%s refused\n", set, equals + 1);
            return 2;
        }
    }
    zlist_destroy (&sets);
    const char *level = lh_config_str (config, "log/level");
    if (streq (level, "warn"))
        lh_log_set_level (LH_LOG_WARN);
    else
    if (streq (level, "error"))
        lh_log_set_level (LH_LOG_ERROR);

    //  Broker on inproc
    zactor_t *broker = zactor_new (lh_broker_actor, (void *) "harness");
    for (int index = 0; s_broker_settings [index][0]; index++) {
        char value [32];
        snprintf (value, sizeof (value), "%" PRId64,
                  lh_config_int (config, s_broker_settings [index][1]));
        if (s_command (broker, "CONFIGURE", s_broker_settings [index][0], value, NULL)) {
            fprintf (stderr, "lh_gateway_harness: broker refused %s\n", s_broker_settings [index][1]);
            return 2;
        }
    }
    const char *inproc = lh_config_str (config, "bus/inproc");
    char *detail = NULL;
    if (s_command (broker, "BIND", inproc, NULL, &detail)) {
        fprintf (stderr, "lh_gateway_harness: cannot bind %s: %s\n", inproc, detail);
        return 1;
    }
    zstr_free (&detail);
    lh_link_t link = { .endpoint = inproc };

    //  Echo, and wait until its workers are registered
    int workers = (int) lh_config_int (config, "actors/echo/workers");
    lh_service_runner_t *echo = lh_service_start (&lh_echo_service, &link, config, workers);
    assert (echo);
    lh_client_t *client = lh_client_new (&link, "harness");
    assert (client);
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline) {
        uint64_t registered, queued;
        if (s_service_counts (client, "echo", &registered, &queued) == 0
        &&  registered >= (uint64_t) workers)
            break;
        zclock_sleep (10);
    }

    //  The gateway
    lh_gateway_args_t args = { .config = config, .link = link };
    zactor_t *gateway = zactor_new (lh_gateway_actor, &args);
    char *status = NULL;
    zsock_recv (gateway, "ss", &status, &detail);
    bool started = status && streq (status, "0");
    printf ("%s %s\n", started? "ready": "failed:", detail);
    fflush (stdout);
    zstr_free (&status);
    zstr_free (&detail);

    bool reading = true;
    while (started && !zsys_interrupted) {
        struct pollfd item = { .fd = 0, .events = POLLIN };
        if (!reading || poll (&item, 1, 100) <= 0) {
            if (!reading)
                zclock_sleep (100);
            continue;
        }
        char line [256];
        if (!fgets (line, sizeof (line), stdin)) {
            reading = false;
            continue;
        }
        line [strcspn (line, "\r\n")] = 0;
        int count = 0, ms = 0;
        if (streq (line, "stop echo")) {
            lh_service_stop (&echo);
            printf ("ok\n");
        }
        else
        if (sscanf (line, "fill %d %d", &count, &ms) == 2)
            printf ("%s\n", s_fill (client, count, ms) == 0? "ok": "failed");
        else
        if (streq (line, "reload")) {
            int rc = s_command (gateway, "RELOAD", NULL, NULL, &detail);
            printf ("%s %s\n", rc == 0? "ok": "failed", detail? detail: "");
            zstr_free (&detail);
        }
        else
            printf ("unknown command\n");
        fflush (stdout);
    }
    zactor_destroy (&gateway);
    lh_client_destroy (&client);
    if (echo)
        lh_service_stop (&echo);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    return started? 0: 1;
}
