/*  =========================================================================
    fuzz_json - libFuzzer target for the JSON <-> msgpack conversions

    Every input is read both as JSON text and as a msgpack body, by the
    quick paths and by the general (jansson) paths, with the default limits
    and with small ones. lh_json_quick_compare aborts if a quick path
    accepts something and renders it differently from the general path;
    the general paths must never crash or leak, whatever they are fed.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/json.
    =========================================================================
*/

#include "lh_json.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    lh_limits_t small = { .max_depth = 4, .max_elements = 64, .max_string = 16 };
    lh_json_quick_compare (data, size, NULL);
    lh_json_quick_compare (data, size, &small);

    //  The general entry points, as the gateway and the tools call them
    char *error = NULL;
    zframe_t *frame = lh_json_text_to_frame ((const char *) data, size, &small, &error);
    assert (frame || error);
    zframe_destroy (&frame);
    zstr_free (&error);
    char *text = lh_json_text_from_msgpack (data, size, &small, &error);
    assert (text || error);
    zstr_free (&text);
    zstr_free (&error);
    return 0;
}
