/*  =========================================================================
    lh_testbus - a broker and some services in this process, for selftests

    Every actor's selftest needs the same set-up: a broker on a private
    inproc endpoint, a config whose data lives in a fresh temporary
    directory, the services under test (and the ones they call), and a
    client. lh_testbus does that in one call and undoes it in one; it
    asserts on every failure, since it only ever runs inside a test.

        lh_testbus_t *bus = lh_testbus_new ("catalogd");
        lh_testbus_start (bus, &lh_storaged_service, 1);
        lh_testbus_start (bus, &lh_catalogd_service, 1);
        lh_reply_t *reply = lh_testbus_call (bus, "catalogd", "register",
                                             "{\"name\": \"w\", \"schema_fingerprint\": \"f\"}");
        assert (lh_reply_status (reply) == 201);
        lh_reply_destroy (&reply);
        lh_testbus_expect (bus, "catalogd", "get", "{}", 400, "bad_field", "name");
        lh_testbus_destroy (&bus);

    Set config keys (lh_testbus_set) before starting the services that
    read them; the broker takes the config's acl/ keys at each start (in-
    process clients of a test bus have role actor), so a test that
    publishes its own events sets acl/actor/publish first. The data directory is DIR/var under the temporary
    directory, and storaged's files are under it, so a test can look at
    what was written.
    =========================================================================
*/

#ifndef LH_TESTBUS_H_INCLUDED
#define LH_TESTBUS_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_testbus_t lh_testbus_t;

//  Start a broker on a fresh inproc endpoint (named after name) and make a
//  config with data/dir in a fresh temporary directory
lh_testbus_t *
    lh_testbus_new (const char *name);

//  Stop every service started, the clients and the broker; remove the
//  temporary directory. Nulls the caller's pointer.
void
    lh_testbus_destroy (lh_testbus_t **self_p);

//  Set a config key for services started after this (asserts it is valid)
void
    lh_testbus_set (lh_testbus_t *self, const char *path, const char *value);

//  The config (borrowed)
lh_config_t *
    lh_testbus_config (lh_testbus_t *self);

//  The link services and clients use to reach the broker (borrowed)
const lh_link_t *
    lh_testbus_link (lh_testbus_t *self);

//  The temporary directory (borrowed); data/dir is "DIR/var"
const char *
    lh_testbus_dir (lh_testbus_t *self);

//  Start workers of a service (0 = its configured count); waits until the
//  broker lists them
void
    lh_testbus_start (lh_testbus_t *self, const lh_service_t *service, int workers);

//  Stop a service started before (it is started again with _start)
void
    lh_testbus_stop (lh_testbus_t *self, const char *name);

//  The bus's own client (made on first use, borrowed)
lh_client_t *
    lh_testbus_client (lh_testbus_t *self);

//  A new client of the test's own, named name; the caller destroys it
lh_client_t *
    lh_testbus_client_new (lh_testbus_t *self, const char *name);

//  Call svc.op with a body written as JSON text (NULL: no body), with a
//  10 s deadline; returns the reply (any status), the caller's to destroy
lh_reply_t *
    lh_testbus_call (lh_testbus_t *self, const char *svc, const char *op,
                     const char *json);

//  The same with a msgpack body (may be NULL/0)
lh_reply_t *
    lh_testbus_call_raw (lh_testbus_t *self, const char *svc, const char *op,
                         const void *body, size_t size);

//  Call svc.op with a body written as JSON (NULL: none) and return the
//  reply (caller destroys it) if its status is status; otherwise print the
//  request and what came, then assert
lh_reply_t *
    lh_testbus_call_status (lh_testbus_t *self, const char *svc, const char *op,
                            const char *json, uint32_t status);

//  The status of lh_testbus_call's reply
uint32_t
    lh_testbus_status (lh_testbus_t *self, const char *svc, const char *op,
                       const char *json);

//  Call svc.op with a body written as JSON (NULL: none) and check the
//  answer: its status, its error's kind and field (NULL: not checked; ""
//  when there must be none), and that nothing else arrives for it. On a
//  mismatch prints the request and what came, then asserts.
void
    lh_testbus_expect (lh_testbus_t *self, const char *svc, const char *op,
                       const char *json, uint32_t status, const char *kind,
                       const char *field);

//  A reply's error as "kind/field" (either part may be empty), or "" when
//  it has no error body; the caller frees it
char *
    lh_testbus_error (lh_reply_t *reply);

//  A reply's body as compact JSON text (caller frees); "" for no body
char *
    lh_testbus_json (lh_reply_t *reply);

//  Self test of this class
void
    lh_testbus_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
