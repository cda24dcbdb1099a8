/*  =========================================================================
    lh_storage_harness - broker + storaged/catalogd (issue 6) in one process, for
    integration tests; default services "storaged". See lh_harness.h for the
    command line and the readiness line.
    =========================================================================
*/

#include "lh_harness.h"

static const lh_harness_t s_harness = {
    .program = "lh_storage_harness", .services = "storaged",
    .max_services = 4, .sign = true
};

int
main (int argc, char *argv [])
{
    return lh_harness_main (&s_harness, argc, argv);
}
