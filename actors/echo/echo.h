/*  =========================================================================
    echo - the echo service: a test double for the bus and the runtime

    Ops (bodies are msgpack; shown here as JSON):

    echo     any body       -> the same body, verbatim. If config
                               actors/echo/tag is set and the body is a map,
                               the map plus "tag": TAG.
    sleep    {"ms": n}      -> sleeps min(n, time left + 1000) ms, then
                               {"slept_ms": n}
    fail     {"status": s, "reason"?: r, "kind"?: k}
                            -> error reply with status s (400 if s is
                               outside 400..599), the SPEC error body
    stream   {"n": n, "size"?: b}
                            -> n PARTs {"i": i, "pad": "<b bytes>"}, then
                               REP {"parts": n}; n <= 10000, b <= 1 MiB
    whoami   (no body)      -> {"pid": pid, "worker": "echo-INDEX"}

    See actors/echo/README.md for buscall examples.
    =========================================================================
*/

#ifndef ECHO_H_INCLUDED
#define ECHO_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The echo service, for lh_service_start and the registry
extern const lh_service_t lh_echo_service;

//  Self test of this class
void
    lh_echo_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
