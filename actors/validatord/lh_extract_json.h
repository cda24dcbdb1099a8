/*  =========================================================================
    lh_extract_json - find the JSON object in a language model's reply

    Models wrap their JSON in prose and Markdown fences. The rules, in order
    (SPEC 5.8):
    - a fenced ```json block wins; else an unlabeled ``` fence; else the
      whole text is searched;
    - in that region, the first balanced {...} (aware of strings and of
      escapes inside them) is the candidate; nested objects come whole,
      unicode and escaped quotes stay intact, {} matches;
    - a top-level array yields its first inner object (the first '{' in it);
    - no '{', an unbalanced one, or a balanced span that does not parse as
      JSON: no match. Text after the span is ignored.

        json_t *object = lh_extract_json (reply, strlen (reply));
        if (!object)
            ...  //  "your response wasn't valid JSON"
        json_decref (object);
    =========================================================================
*/

#ifndef LH_EXTRACT_JSON_H_INCLUDED
#define LH_EXTRACT_JSON_H_INCLUDED

#include <czmq.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Return the JSON object found in text (a new reference), or NULL when
//  there is none. Never fails on any input.
json_t *
    lh_extract_json (const char *text, size_t size);

//  Self test of this class
void
    lh_extract_json_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
