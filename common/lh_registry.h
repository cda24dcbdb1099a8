/*  =========================================================================
    lh_registry - the services the launcher can run

    One table, in lh_registry.c, names every service built into the
    `lakehouse` binary. `lakehouse up` starts all of them (or those named
    in config actors/run), `lakehouse node --actors a,b` the ones named.
    Adding a service is one row in that table.

        const lh_service_t *service = lh_registry_lookup ("echo");
        for (size_t index = 0; index < lh_registry_size (); index++)
            puts (lh_registry_at (index)->name);
    =========================================================================
*/

#ifndef LH_REGISTRY_H_INCLUDED
#define LH_REGISTRY_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Return the service of that name, or NULL if none is registered
const lh_service_t *
    lh_registry_lookup (const char *name);

//  Return the number of registered services
size_t
    lh_registry_size (void);

//  Return the service at index (0 .. size - 1, in table order), or NULL
//  past the end
const lh_service_t *
    lh_registry_at (size_t index);

//  Self test of this class
void
    lh_registry_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
