/*  =========================================================================
    lh_distill_cli - `lakehouse distill STAGE [options]`: distilld from the
    shell

    The launcher (tools/lakehouse.c) passes the words after `distill` and
    a client connected to the broker; this builds the request, calls
    distilld over the bus (long stages with progress: true, their PARTs
    shown on stderr, one line rewritten in place on a terminal), and
    prints the reply as JSON on stdout.

        lakehouse distill materialize [--recorded-at T] [--run-id ID]
        lakehouse distill score [--since DAY] [--until DAY] [--run-id ID]
        lakehouse distill export [--run-id ID]
        lakehouse distill drift [--run-id ID]
        lakehouse distill run [--recorded-at T] [--since DAY] [--until DAY] [--run-id ID]
        lakehouse distill replay --task TEXT [--local-only] [--allow-escalation]
                                 [--no-retrieval] [--dry-run]
        lakehouse distill runs
        lakehouse distill report RUN_ID
        (every stage) [--timeout-ms N]

    Exit codes as the launcher's: 0 the stage answered 2xx, 1 it refused
    or failed (status and reason on stderr), 2 a usage error.
    =========================================================================
*/

#ifndef LH_DISTILL_CLI_H_INCLUDED
#define LH_DISTILL_CLI_H_INCLUDED

#include "lh_client.h"
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_DISTILL_CLI_TIMEOUT_MS   600000      //  default deadline of a stage

//  Build the request of a command line: words are the arguments after
//  `distill` (strings, borrowed). Returns 0 with *op (static), *body (new)
//  and *timeout_ms, or -1 with *error_p (caller frees) saying what is
//  wrong.
int
    lh_distill_cli_request (zlist_t *words, const char **op, json_t **body,
                            uint32_t *timeout_ms, char **error_p);

//  Run a command line over client (connected to the broker), printing
//  to out and err. Returns the exit code (0, 1, 2).
int
    lh_distill_cli_run (lh_client_t *client, zlist_t *words, FILE *out, FILE *err);

//  Print the usage lines of `lakehouse distill`
void
    lh_distill_cli_usage (FILE *file);

//  Self test of this class
void
    lh_distill_cli_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
