/*  =========================================================================
    lh_registry - the services the launcher can run

    The table below is the only place that knows which services exist.
    A new service adds its header and one row; the name must equal the
    service's own .name (the selftest checks it).
    =========================================================================
*/

#include "lh_registry.h"
#include "echo.h"
#include "storaged.h"
#include "catalogd.h"
#include "ingestd.h"
#include "queryd.h"
#include "chatd.h"
#include "validatord.h"
#include "embedd.h"
#include "vectord.h"
#include "pathwayd.h"
#include "matrixd.h"
#include "distilld.h"
#include "observerd.h"
#include "workflowd.h"

typedef struct {
    const char *name;                   //  name used in actors/run, --actors
    const lh_service_t *service;        //  the service definition
} s_entry_t;

static const s_entry_t s_registry [] = {
    //  In start order: a service's dependencies come before it
    { "echo",       &lh_echo_service },
    { "storaged",   &lh_storaged_service },
    { "catalogd",   &lh_catalogd_service },
    { "ingestd",    &lh_ingestd_service },
    { "queryd",     &lh_queryd_service },
    { "chatd",      &lh_chatd_service },
    { "validatord", &lh_validatord_service },
    { "embedd",     &lh_embedd_service },
    { "vectord",    &lh_vectord_service },
    { "pathwayd",   &lh_pathwayd_service },
    { "matrixd",    &lh_matrixd_service },
    { "distilld",   &lh_distilld_service },
    //  observerd and workflowd: after the services they watch and call
    { "observerd",  &lh_observerd_service },
    { "workflowd",  &lh_workflowd_service },
};

#define S_REGISTRY_SIZE (sizeof (s_registry) / sizeof (s_registry [0]))


//  --------------------------------------------------------------------------
//  Return the service of that name, or NULL if none is registered

const lh_service_t *
lh_registry_lookup (const char *name)
{
    if (!name)
        return NULL;
    for (size_t index = 0; index < S_REGISTRY_SIZE; index++)
        if (streq (s_registry [index].name, name))
            return s_registry [index].service;
    return NULL;
}


//  --------------------------------------------------------------------------
//  Return the number of registered services

size_t
lh_registry_size (void)
{
    return S_REGISTRY_SIZE;
}


//  --------------------------------------------------------------------------
//  Return the service at index, or NULL past the end

const lh_service_t *
lh_registry_at (size_t index)
{
    return index < S_REGISTRY_SIZE? s_registry [index].service: NULL;
}


//  --------------------------------------------------------------------------
//  Self test of this class

void
lh_registry_test (bool verbose)
{
    printf (" * lh_registry: ");

    assert (lh_registry_size () >= 1);
    assert (lh_registry_lookup ("echo") == &lh_echo_service);
    assert (lh_registry_lookup ("no-such-service") == NULL);
    assert (lh_registry_lookup ("") == NULL);
    assert (lh_registry_lookup (NULL) == NULL);
    assert (lh_registry_at (lh_registry_size ()) == NULL);

    //  Every row: names agree, unique, and every op has a handler
    for (size_t index = 0; index < lh_registry_size (); index++) {
        const lh_service_t *service = lh_registry_at (index);
        assert (service);
        assert (service->name);
        assert (streq (service->name, s_registry [index].name));
        assert (lh_registry_lookup (service->name) == service);
        assert (service->ops);
        for (const lh_op_t *op = service->ops; op->name; op++)
            assert (op->handler);
        if (verbose)
            printf ("%s ", service->name);
    }
    printf ("OK\n");
}
