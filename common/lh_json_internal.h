/*  =========================================================================
    lh_json_internal - what lh_json.c shares with lh_json_quick.c

    Not for other callers: use lh_json.h (the general paths) and
    lh_json_quick.h (the quick paths).
    =========================================================================
*/

#ifndef LH_JSON_INTERNAL_H_INCLUDED
#define LH_JSON_INTERNAL_H_INCLUDED

#include "lh_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Nesting allowed by limits, capped at what msgpack-c can unpack (32)
size_t
    lh_json_max_depth (const lh_limits_t *limits);

//  Offset of the first byte that is not part of valid UTF-8 (no overlong
//  forms, no surrogates, nothing past U+10FFFF), or size if all is valid
size_t
    lh_json_utf8_invalid_at (const uint8_t *data, size_t size);

//  Encode size bytes as standard base64 with padding into out, which has
//  room for (size + 2) / 3 * 4 characters; returns the characters written
//  (no terminator)
size_t
    lh_json_base64_encode_to (const uint8_t *data, size_t size, char *out);

#ifdef __cplusplus
}
#endif

#endif
