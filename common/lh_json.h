/*  =========================================================================
    lh_json - msgpack <-> JSON (jansson), for the gateway and the tools

    Conventions (documented in docs/json.md):
    - integers stay integers: msgpack int/uint <-> JSON integer (int64);
      a msgpack uint above INT64_MAX becomes a JSON string of its digits;
    - floats stay floats: msgpack float32/64 <-> JSON real;
    - strings must be valid UTF-8 both ways (invalid -> error);
    - binary: msgpack bin <-> the JSON object {"$base64": "<standard base64>"}
      (an object with exactly that one key); ext types -> the same with
      {"$ext": type, "$base64": ...};
    - map keys must be strings (a msgpack map with another key type is an
      error); nil <-> null; bool <-> true/false;
    - nesting depth and sizes are bounded by lh_limits_t; going past a bound
      is an error, never a crash or an unbounded allocation.
    =========================================================================
*/

#ifndef LH_JSON_H_INCLUDED
#define LH_JSON_H_INCLUDED

#include <jansson.h>
#include "lh_proto.h"
#include "lh_body.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Decode a msgpack buffer (checked with lh_msgpack_check first) into a new
//  JSON value. Returns NULL on error and sets *error_p (caller frees) to a
//  sentence naming what was wrong.
json_t *
    lh_json_from_msgpack (const void *data, size_t size,
                          const lh_limits_t *limits, char **error_p);

//  Same, from an already decoded object
json_t *
    lh_json_from_object (const msgpack_object *object, char **error_p);

//  Pack a JSON value into a pack buffer, honouring the $base64 convention.
//  Returns 0, or -1 with *error_p set (depth over limits->max_depth, ...).
int
    lh_json_to_pack (const json_t *json, lh_pack_t *pack,
                     const lh_limits_t *limits, char **error_p);

//  Parse JSON text into a new msgpack frame. On a parse error returns NULL
//  and sets *error_p to "line L, column C: <jansson's text>".
zframe_t *
    lh_json_text_to_frame (const char *text, size_t size,
                           const lh_limits_t *limits, char **error_p);

//  Render a msgpack buffer as compact JSON text (caller frees), or NULL
//  with *error_p set.
char *
    lh_json_text_from_msgpack (const void *data, size_t size,
                               const lh_limits_t *limits, char **error_p);

//  The quick paths, for the common case: JSON text straight to msgpack
//  and back, without jansson values. Each declines what lies outside its
//  subset (\u escapes, "$base64" keys, repeated keys, integers of more
//  than 18 digits, limits reached, any error); the general functions above
//  then give the same result or the error. What a quick path accepts comes
//  out exactly as the general path renders it.
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

//  Self test of this class
void
    lh_json_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
