/*  =========================================================================
    fuzz_extract_json - libFuzzer target for finding the JSON object in a
    language model's reply (actors/validatord/lh_extract_json.c)

    Every input is a reply: whatever is found must be a JSON object, and
    the object written out compactly and put back in a ```json fence must
    be found again, equal (unless its text holds ``` itself, which would
    end the fence). The same bytes are also searched behind prose and
    inside an unclosed fence, the shapes models produce.

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over
    tests/fuzz/corpus/extract_json.
    =========================================================================
*/

#include "lh_extract_json.h"

//  Find the object in text; if there is one, check it and its round trip
static void
s_check (const char *text, size_t size)
{
    json_t *object = lh_extract_json (text, size);
    if (!object)
        return;
    assert (json_is_object (object));
    char *dumped = json_dumps (object, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert (dumped);
    if (!strstr (dumped, "```")) {
        char *fenced = zsys_sprintf ("```json\n%s\n```", dumped);
        json_t *again = lh_extract_json (fenced, strlen (fenced));
        assert (again && json_equal (object, again));
        json_decref (again);
        free (fenced);
    }
    free (dumped);
    json_decref (object);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    s_check (text, size);
    //  Behind prose, and inside a fence that is never closed
    static const char *wrappers [] = { "Here is the result:\n", "```json\n" };
    for (size_t index = 0; index < 2; index++) {
        size_t prefix = strlen (wrappers [index]);
        char *wrapped = (char *) malloc (prefix + size + 1);
        assert (wrapped);
        memcpy (wrapped, wrappers [index], prefix);
        memcpy (wrapped + prefix, data, size);
        s_check (wrapped, prefix + size);
        free (wrapped);
    }
    return 0;
}
