/*  =========================================================================
    lh_storage_harness - broker + storaged/catalogd (issue 6) in one process, for
    integration tests; default services "storaged". See lh_harness.h for the
    command line and the readiness line.
    =========================================================================
*/

#include "lh_harness.h"

int
main (int argc, char *argv [])
{
    return lh_harness_main (argc, argv, "lh_storage_harness", "storaged");
}
