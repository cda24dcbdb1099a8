/*  =========================================================================
    lh_json_quick - the quick JSON <-> msgpack paths, for the common case

    JSON text straight to msgpack, and msgpack straight to JSON text,
    without jansson values (no allocation per value, no loop-check table
    per container). Each declines what lies outside its subset (\u
    escapes, "$base64" keys, repeated keys, integers of more than 18
    digits, limits reached, any error); the general functions of lh_json.h
    then give the same result or the error. What a quick path accepts comes
    out exactly as the general path renders it: lh_json_quick_compare
    checks that, in this class's selftest and in the fuzz_json target.

    lh_json.h includes this header; lh_json_text_to_frame and
    lh_json_text_from_msgpack try the quick path first.
    =========================================================================
*/

#ifndef LH_JSON_QUICK_H_INCLUDED
#define LH_JSON_QUICK_H_INCLUDED

#include "lh_proto.h"
#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Pack JSON text; returns 0, or -1 (declined, pack untouched).
int
    lh_json_quick_pack (const char *text, size_t size, lh_pack_t *pack,
                        const lh_limits_t *limits);

//  Render msgpack as compact JSON text (caller frees), or NULL (declined).
char *
    lh_json_quick_text (const void *data, size_t size, const lh_limits_t *limits);

//  Check both quick paths against the general ones on the same bytes (as
//  JSON text and as msgpack); aborts on any difference. Returns how many
//  quick paths accepted them (0-2). For tests and fuzz_json.
int
    lh_json_quick_compare (const void *data, size_t size, const lh_limits_t *limits);

//  Self test of this class (the differential test)
void
    lh_json_quick_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
