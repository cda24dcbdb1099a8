/*  =========================================================================
    lh_chat_harness - broker + chatd/validatord (issue 9) in one process, for
    integration tests; default services "chatd,validatord". See lh_harness.h for the
    command line and the readiness line.
    =========================================================================
*/

#include "lh_harness.h"

static const lh_harness_t s_harness = {
    .program = "lh_chat_harness", .services = "chatd,validatord",
    .max_services = 4, .sign = true
};

int
main (int argc, char *argv [])
{
    return lh_harness_main (&s_harness, argc, argv);
}
