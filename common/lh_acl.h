/*  =========================================================================
    lh_acl - who may do what on the bus: the config's `acl` section as a
    table of roles, read by the broker (every READY, REQ, PUB and SUB) and
    by the gateway (every HTTP request, before anything reaches the bus)

    Every peer has one role: actor, gateway, client, admin, tap or mcp (from its
    CURVE certificate, from the plain-tcp endpoint's bus/plain_role, or
    from the launcher's in-process grant: docs/broker.md "Roles"). Each
    role has four lists, comma-separated (blanks around entries ignored):

    acl/ROLE/serve      services it may offer (READY): svc, or *. Only role
                        actor may serve at all, whatever its list says.
    acl/ROLE/call       what it may call (REQ): svc (any op), svc.op,
                        svc.*, or *. broker.bind, broker.unbind and
                        broker.reload (the admin ops) need role admin too.
    acl/ROLE/publish    topics it may publish (PUB): PREFIX (any topic
                        starting with it), SERVICE=PREFIX (only from a
                        connection that serves SERVICE, i.e. a worker's
                        own socket), or *.
    acl/ROLE/subscribe  topic prefixes it may subscribe to (SUB): the same
                        entries; a SUB for prefix P passes when an entry's
                        prefix starts P, so "catalog." admits a SUB for
                        "catalog.changed" but not one for "" (everything),
                        which needs *.

    An empty list allows nothing. The defaults are the config defaults
    (common/lh_config_keys.h), e.g. actors publish only what their service
    publishes (acl/actor/publish = "catalogd=catalog.") and clients
    neither publish nor subscribe.

        lh_acl_t *acl = lh_acl_new ();
        if (lh_acl_load (acl, config, &error)) ...      //  every acl/ key
        if (!lh_acl_may_call (acl, "client", "broker", "unbind")) ... 403
        lh_acl_destroy (&acl);

    An lh_acl_t is not changed after it is loaded; the lookups are then
    safe from any number of threads.
    =========================================================================
*/

#ifndef LH_ACL_H_INCLUDED
#define LH_ACL_H_INCLUDED

#include "lh_proto.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_acl_t lh_acl_t;

//  The roles, "actor|gateway|client|admin|tap|mcp" (a config range)
#define LH_ACL_ROLES    "actor|gateway|client|admin|tap|mcp"

//  Create an ACL holding the defaults of every acl/ key
lh_acl_t *
    lh_acl_new (void);

//  Destroy; nulls the caller's pointer
void
    lh_acl_destroy (lh_acl_t **self_p);

//  Set one list, key "ROLE/serve|call|publish|subscribe" (no "acl/").
//  Returns 0, or -1 with a sentence naming the bad entry in *error_p
//  (caller frees); the list is then unchanged.
int
    lh_acl_set (lh_acl_t *self, const char *key, const char *value, char **error_p);

//  Set every acl/ key from a config. Returns 0, or -1 with *error_p
//  ("config acl/client/call: ...").
int
    lh_acl_load (lh_acl_t *self, lh_config_t *config, char **error_p);

//  Is this one of the roles?
bool
    lh_acl_role_valid (const char *role);

//  Is svc.op one of the admin ops (broker.bind, broker.unbind, broker.reload)?
bool
    lh_acl_admin_op (const char *svc, const char *op);

//  May a peer of role offer svc? (Only role actor, as its list says.)
bool
    lh_acl_may_serve (lh_acl_t *self, const char *role, const char *svc);

//  May role call svc.op? The admin ops need role admin as well.
bool
    lh_acl_may_call (lh_acl_t *self, const char *role, const char *svc, const char *op);

//  May role publish topic? service is what the sending connection serves
//  (NULL or "" for none).
bool
    lh_acl_may_publish (lh_acl_t *self, const char *role, const char *service,
                        const char *topic);

//  May role subscribe to the topics starting with prefix? service as above.
bool
    lh_acl_may_subscribe (lh_acl_t *self, const char *role, const char *service,
                          const char *prefix);

//  Self test of this class
void
    lh_acl_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
