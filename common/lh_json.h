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

    The quick paths for the common case (JSON text straight to msgpack and
    back, without jansson values) are in lh_json_quick.h, included here.
    =========================================================================
*/

#ifndef LH_JSON_H_INCLUDED
#define LH_JSON_H_INCLUDED

#include <jansson.h>
#include "lh_proto.h"
#include "lh_body.h"
#include "lh_json_quick.h"

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

//  Parse JSON text into a new jansson value: any value at the top, a
//  repeated key refused, NUL (\u0000) allowed in strings and in keys, a
//  raw NUL byte or anything after the value refused, nesting checked
//  against limits (NULL: the defaults) before parsing. Returns NULL on
//  error and sets *error_p to "line L, column C: <sentence>".
json_t *
    lh_json_parse (const char *text, size_t size, const lh_limits_t *limits,
                   char **error_p);

//  Parse JSON text into a new msgpack frame (the quick path, else
//  lh_json_parse and lh_json_to_pack). On error returns NULL and sets
//  *error_p to "line L, column C: <sentence>" or "at PATH: <sentence>".
zframe_t *
    lh_json_text_to_frame (const char *text, size_t size,
                           const lh_limits_t *limits, char **error_p);

//  Render a msgpack buffer as compact JSON text (caller frees), or NULL
//  with *error_p set.
char *
    lh_json_text_from_msgpack (const void *data, size_t size,
                               const lh_limits_t *limits, char **error_p);

//  Self test of this class
void
    lh_json_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
