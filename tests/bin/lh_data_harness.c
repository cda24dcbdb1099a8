/*  =========================================================================
    lh_data_harness - broker + storaged + catalogd + ingestd + queryd in one
    process, for the integration tests of issue 7 and bench/ingest.sh

    lh_data_harness [--broker ENDPOINT] [--services LIST] [--workers N]
                    [--set key=value ...]

    LIST is comma-separated from storaged, catalogd, ingestd, queryd
    (default: all four), or "none"; log/level "debug" turns on debug
    logging. See lh_harness.h for the rest and the readiness line.
    =========================================================================
*/

#include "lh_harness.h"

static const lh_harness_t s_harness = {
    .program = "lh_data_harness", .services = "storaged,catalogd,ingestd,queryd",
    .defaults_only = true, .max_services = 8, .debug_log = true
};

int
main (int argc, char *argv [])
{
    return lh_harness_main (&s_harness, argc, argv);
}
