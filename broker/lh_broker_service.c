/*  =========================================================================
    lh_broker_service - the broker's built-in `broker` service: ping,
    services, workers, stats, and for role admin bind, unbind, reload

    Part of the broker (see lh_broker_internal.h). Replies are built as
    JSON values and packed with the common JSON -> msgpack path (lh_json).
    =========================================================================
*/

#include "lh_broker_internal.h"
#include "lh_trace.h"
#include "lh_json.h"

//  --------------------------------------------------------------------------
//  Turn a reply built as JSON into a msgpack frame; destroys the value

static zframe_t *
s_json_frame (json_t **json_p)
{
    lh_pack_t *pack = lh_pack_new ();
    char *error = NULL;
    int rc = lh_json_to_pack (*json_p, pack, &lh_limits_default, &error);
    assert (rc == 0);                   //  our own values: shallow, no $base64
    json_decref (*json_p);
    *json_p = NULL;
    return lh_pack_frame (&pack);
}


//  --------------------------------------------------------------------------
//  A string field of a request body, or NULL (copied, caller frees)

static char *
s_body_str (lh_msg_t *msg, const char *key)
{
    if (!msg->body)
        return NULL;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    char *value = NULL;
    if (lh_msgpack_unpack (zframe_data (msg->body), zframe_size (msg->body),
                           &lh_limits_default, &zone, &object) == 0)
        value = lh_obj_strdup (lh_obj_get (&object, key));
    msgpack_zone_destroy (&zone);
    return value;
}


//  --------------------------------------------------------------------------
//  Is a boolean field of a request body true

static bool
s_body_true (lh_msg_t *msg, const char *key)
{
    if (!msg->body)
        return false;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    bool value = false;
    if (lh_msgpack_unpack (zframe_data (msg->body), zframe_size (msg->body),
                           &lh_limits_default, &zone, &object) == 0)
        lh_obj_bool (&object, key, &value);
    msgpack_zone_destroy (&zone);
    return value;
}


//  --------------------------------------------------------------------------
//  A service's latency histogram, its non-empty buckets: [[value_us,
//  count], ...] (value_us: the bucket's middle). Two samples of it give
//  the latencies of the requests between them (the console's chart).

static json_t *
s_latency_json (service_t *service)
{
    json_t *buckets = json_array ();
    for (size_t bucket = 0; bucket < S_LAT_BUCKETS; bucket++)
        if (service->latency [bucket])
            json_array_append_new (buckets, json_pack ("[I, I]",
                (json_int_t) lh_broker_latency_value (bucket),
                (json_int_t) service->latency [bucket]));
    return buckets;
}


//  --------------------------------------------------------------------------
//  broker.services: every service, its ops, workers and queue depth

static json_t *
s_services_json (self_t *self)
{
    json_t *list = json_array ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        json_t *ops = json_array ();
        for (link_t *link = service->workers.next; link != &service->workers; link = link->next) {
            peer_t *worker = s_container (link, peer_t, worker_link);
            const char *token = worker->ops? worker->ops: "*";
            while (*token) {
                const char *comma = strchr (token, ',');
                size_t size = comma? (size_t) (comma - token): strlen (token);
                bool known = false;
                size_t index;
                json_t *value;
                json_array_foreach (ops, index, value) {
                    if (json_string_length (value) == size
                    &&  memcmp (json_string_value (value), token, size) == 0)
                        known = true;
                }
                if (!known)
                    json_array_append_new (ops, json_stringn (token, size));
                token = comma? comma + 1: token + size;
            }
        }
        json_array_append_new (list, json_pack ("{s:s, s:o, s:I, s:I}",
            "name", service->name, "ops", ops,
            "workers", (json_int_t) service->nworkers,
            "queued", (json_int_t) service->queued));
    }
    return json_pack ("{s:o}", "services", list);
}


//  --------------------------------------------------------------------------
//  broker.workers: every worker, its credit, load and idle time

static json_t *
s_workers_json (self_t *self)
{
    json_t *list = json_array ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        for (link_t *link = service->workers.next; link != &service->workers; link = link->next) {
            peer_t *worker = s_container (link, peer_t, worker_link);
            json_array_append_new (list, json_pack ("{s:s, s:s, s:I, s:I, s:I}",
                "service", service->name, "src", worker->src,
                "credit", (json_int_t) worker->credit,
                "inflight", (json_int_t) worker->inflight,
                "idle_ms", (json_int_t) (self->now - worker->idle_since)));
        }
    }
    return json_pack ("{s:o}", "workers", list);
}


//  --------------------------------------------------------------------------
//  broker.stats (and the STATS pipe command): counters of everything; with
//  latency, each service's histogram too

json_t *
lh_broker_stats_json (self_t *self, bool latency)
{
    json_t *services = json_object ();
    for (service_t *service = (service_t *) zhashx_first (self->services);
         service; service = (service_t *) zhashx_next (self->services)) {
        json_t *errors = json_object ();
        for (size_t slot = 0; slot < S_ERROR_SLOTS && service->errors [slot].status; slot++) {
            char status [16];
            snprintf (status, sizeof status, "%u", service->errors [slot].status);
            json_object_set_new (errors, status,
                                 json_integer ((json_int_t) service->errors [slot].count));
        }
        if (service->errors_other)
            json_object_set_new (errors, "other", json_integer ((json_int_t) service->errors_other));
        json_object_set_new (services, service->name, json_pack (
            "{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I}",
            "requests", (json_int_t) service->requests,
            "replies", (json_int_t) service->replies,
            "errors", errors,
            "queued", (json_int_t) service->queued,
            "workers", (json_int_t) service->nworkers,
            "p50_us", (json_int_t) lh_broker_latency_percentile (service, 0.50),
            "p99_us", (json_int_t) lh_broker_latency_percentile (service, 0.99),
            "dropped", (json_int_t) service->dropped));
        if (latency)
            json_object_set_new (json_object_get (services, service->name), "latency",
                                 s_latency_json (service));
    }
    //  The span exporter of the broker's process (lh_trace.h)
    lh_trace_stats_t trace;
    lh_trace_stats (&trace);
    json_t *stats = json_pack ("{s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I},"
                      " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
                      " s:{s:b, s:I, s:I}}",
        "uptime_ms", (json_int_t) (lh_broker_now_ms () - self->started),
        "bseq", (json_int_t) self->bseq,
        "peers", (json_int_t) zhashx_size (self->peers),
        "redelivered", (json_int_t) self->redelivered,
        "services", services,
        "dropped",
            "malformed", (json_int_t) self->dropped_malformed,
            "unroutable", (json_int_t) self->dropped_unroutable,
            "full", (json_int_t) self->dropped_full,
            "late_reply", (json_int_t) self->dropped_late,
            "tap", (json_int_t) self->dropped_tap,
            "sub", (json_int_t) self->dropped_sub,
        "refused",
            "handshake", (json_int_t) self->refused_handshake,
            "zap", (json_int_t) self->refused_zap,
            "revoked", (json_int_t) self->refused_revoked,
            "name", (json_int_t) self->refused_name,
            "serve", (json_int_t) self->refused_serve,
            "call", (json_int_t) self->refused_call,
            "admin", (json_int_t) self->refused_admin,
            "grant", (json_int_t) self->refused_grant,
            "publish", (json_int_t) self->refused_publish,
            "subscribe", (json_int_t) self->refused_subscribe,
            "instance", (json_int_t) self->refused_instance,
        "curve",
            "on", self->zap != NULL,
            "keys", (json_int_t) (self->allow? lh_allow_size (self->allow): 0),
            "generation", (json_int_t) self->allow_gen);
    json_object_set_new (stats, "trace", json_pack (
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
        "enabled", trace.enabled,
        "spans", (json_int_t) trace.spans,
        "queued", (json_int_t) trace.queued,
        "queue_max", (json_int_t) trace.queue_max,
        "dropped", (json_int_t) trace.dropped,
        "exported", (json_int_t) trace.exported,
        "failed", (json_int_t) trace.failed,
        "posts", (json_int_t) trace.posts,
        "post_errors", (json_int_t) trace.post_errors,
        "last_error", trace.last_error));
    return stats;
}


//  --------------------------------------------------------------------------
//  broker.bind / unbind / reload (role admin): bind a second endpoint with
//  a new server key, unbind the old one, reload the allow set now. Returns
//  the reply body, or NULL after answering an error.

static json_t *
s_serve_admin (self_t *self, lh_msg_t *msg, service_t *service)
{
    lh_header_t *header = &msg->header;
    if (streq (header->op, "reload")) {
        lh_broker_reload_allow (self, true);
        return json_pack ("{s:I, s:I}", "keys",
                          (json_int_t) (self->allow? lh_allow_size (self->allow): 0),
                          "generation", (json_int_t) self->allow_gen);
    }
    char *endpoint = s_body_str (msg, "endpoint");
    char *cert = s_body_str (msg, "cert");
    char *error = NULL;
    json_t *json = NULL;
    if (!endpoint)
        error = strdup ("the body needs \"endpoint\"");
    else
    if (streq (header->op, "bind")) {
        char *bound = lh_broker_bind_router (self, endpoint, cert, &error);
        if (bound) {
            lh_info ("broker", NULL, "bound %s%s%s", bound, cert? " with ": "", cert? cert: "");
            json = json_pack ("{s:s}", "endpoint", bound);
        }
        free (bound);
    }
    else
    if (lh_broker_unbind_router (self, endpoint, &error) == 0) {
        lh_info ("broker", NULL, "unbound %s", endpoint);
        json = json_pack ("{s:s}", "endpoint", endpoint);
    }
    if (!json)
        lh_broker_reject_request (self, msg, service, LH_ST_BAD_REQUEST, "bad_request",
                          error? error: "failed", 0);
    free (error);
    free (endpoint);
    free (cert);
    return json;
}


//  --------------------------------------------------------------------------
//  A REQ to the built-in `broker` service: ping, services, workers, stats;
//  and for role admin: bind, unbind, reload

void
lh_broker_serve_builtin (self_t *self, peer_t *peer, lh_msg_t *msg, service_t *service)
{
    lh_header_t *header = &msg->header;
    json_t *json = NULL;
    if (streq (header->op, "ping"))
        json = json_pack ("{s:b, s:s}", "pong", 1, "name", self->name);
    else
    if (streq (header->op, "services"))
        json = s_services_json (self);
    else
    if (streq (header->op, "workers"))
        json = s_workers_json (self);
    else
    if (streq (header->op, "stats"))
        json = lh_broker_stats_json (self, s_body_true (msg, "latency"));
    else
    if (streq (header->op, "bind") || streq (header->op, "unbind")
    ||  streq (header->op, "reload")) {
        if (!streq (peer->role, "admin")) {
            self->refused_admin++;
            lh_broker_reject_request (self, msg, service, LH_ST_FORBIDDEN, "forbidden",
                              "broker admin ops need role admin", 0);
            return;
        }
        json = s_serve_admin (self, msg, service);
        if (!json)
            return;
    }
    else {
        lh_broker_reject_request (self, msg, service, LH_ST_NOT_FOUND, "no_such_op",
                          "the broker service has ping, services, workers, stats, "
                          "bind, unbind and reload", 0);
        return;
    }
    zframe_t *body = s_json_frame (&json);
    lh_broker_reply_from_broker (self, msg->routing, header->id, header->bseq,
                         (header->has & LH_H_TR)? header->tr: NULL,
                         service, service->name, header->op, LH_ST_OK, &body);
}


