/*  =========================================================================
    lh_chat_harness - broker + chatd/validatord (issue 9) in one process, for
    integration tests; default services "chatd,validatord". See lh_harness.h for the
    command line and the readiness line.
    =========================================================================
*/

#include "lh_harness.h"

int
main (int argc, char *argv [])
{
    return lh_harness_main (argc, argv, "lh_chat_harness", "chatd,validatord");
}
