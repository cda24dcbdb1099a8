/*  =========================================================================
    lh_extract_json - find the JSON object in a language model's reply;
    see lh_extract_json.h for the rules
    =========================================================================
*/

#include "lh_extract_json.h"

//  A span of the input text
typedef struct {
    const char *data;                   //  first byte, NULL when absent
    size_t size;                        //  bytes
} s_span_t;


//  --------------------------------------------------------------------------
//  Find needle in [data, data + size); NULL if absent

static const char *
s_find (const char *data, size_t size, const char *needle)
{
    return (const char *) memmem (data, size, needle, strlen (needle));
}


//  --------------------------------------------------------------------------
//  Walk the Markdown fences of text in pairs (opener, closer) and return
//  the body of the first ```json block in *json_p and of the first
//  unlabeled ``` block in *plain_p. An opener without a closer runs to the
//  end of the text.

static void
s_fences (const char *text, size_t size, s_span_t *json_p, s_span_t *plain_p)
{
    const char *end = text + size;
    const char *scan = text;
    while (scan < end && !(json_p->data && plain_p->data)) {
        const char *open = s_find (scan, end - scan, "```");
        if (!open)
            break;
        //  The label is the rest of the opener's line
        const char *label = open + 3;
        while (label < end && *label == '`')
            label++;
        size_t rest = label < end? (size_t) (end - label): 0;
        const char *eol = (const char *) memchr (label, '\n', rest);
        const char *body = eol? eol + 1: end;
        const char *label_end = eol? eol: end;
        while (label < label_end && isspace ((unsigned char) *label))
            label++;
        while (label_end > label && isspace ((unsigned char) label_end [-1]))
            label_end--;
        size_t label_size = label_end - label;

        const char *close = s_find (body, end - body, "```");
        s_span_t span = { body, (close? close: end) - body };
        if (label_size == 4 && strncasecmp (label, "json", 4) == 0) {
            if (!json_p->data)
                *json_p = span;
        }
        else
        if (label_size == 0) {
            if (!plain_p->data)
                *plain_p = span;
        }
        if (!close)
            break;
        scan = close + 3;
        while (scan < end && *scan == '`')
            scan++;
    }
}


//  --------------------------------------------------------------------------
//  Return the first balanced {...} span of region, aware of JSON strings
//  and the escapes inside them; data NULL when there is none

static s_span_t
s_balanced (s_span_t region)
{
    s_span_t none = { NULL, 0 };
    const char *start = memchr (region.data, '{', region.size);
    if (!start)
        return none;
    const char *end = region.data + region.size;
    size_t depth = 0;
    bool in_string = false;
    for (const char *scan = start; scan < end; scan++) {
        char c = *scan;
        if (in_string) {
            if (c == '\\')
                scan++;                 //  Skip the escaped character
            else
            if (c == '"')
                in_string = false;
        }
        else
        if (c == '"')
            in_string = true;
        else
        if (c == '{')
            depth++;
        else
        if (c == '}' && --depth == 0) {
            s_span_t span = { start, scan + 1 - start };
            return span;
        }
    }
    return none;
}


//  --------------------------------------------------------------------------
//  Return the JSON object found in text (a new reference), or NULL

json_t *
lh_extract_json (const char *text, size_t size)
{
    if (!text || size == 0)
        return NULL;
    s_span_t json_fence = { NULL, 0 };
    s_span_t plain_fence = { NULL, 0 };
    s_fences (text, size, &json_fence, &plain_fence);

    s_span_t region = { text, size };
    if (json_fence.data)
        region = json_fence;
    else
    if (plain_fence.data)
        region = plain_fence;

    s_span_t span = s_balanced (region);
    if (!span.data)
        return NULL;
    json_error_t error;
    json_t *object = json_loadb (span.data, span.size,
                                 JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &error);
    if (object && !json_is_object (object)) {
        json_decref (object);
        object = NULL;
    }
    return object;
}


//  --------------------------------------------------------------------------
//  Self test of this class: one row per class of reply

typedef struct {
    const char *name;                   //  what the case shows
    const char *text;                   //  the model's reply
    const char *expect;                 //  expected object (compact JSON), NULL = no match
} s_case_t;

static const s_case_t s_cases [] = {
    //  The 12 classes of SPEC 5.8
    { "fenced json block",
      "Here you go:\n```json\n{\"a\": 1}\n```\nThanks", "{\"a\":1}" },
    { "json fence wins over earlier prose object",
      "Draft {\"draft\": true} then\n```json\n{\"final\": 2}\n```", "{\"final\":2}" },
    { "json fence wins over earlier unlabeled fence",
      "```\n{\"plain\": 1}\n```\n```json\n{\"json\": 1}\n```", "{\"json\":1}" },
    { "unlabeled fence",
      "Sure.\n```\n{\"b\": [1, 2]}\n```", "{\"b\":[1,2]}" },
    { "first balanced object in prose",
      "The answer is {\"c\": \"x\"} and also {\"d\": 1}.", "{\"c\":\"x\"}" },
    { "braces inside strings do not count",
      "ok {\"s\": \"a } b { c\"} done", "{\"s\":\"a } b { c\"}" },
    { "escaped quotes intact",
      "x {\"q\": \"say \\\"hi\\\" }\"} y", "{\"q\":\"say \\\"hi\\\" }\"}" },
    { "nested objects whole",
      "{\"o\": {\"p\": {\"q\": 1}}, \"r\": 2}", "{\"o\":{\"p\":{\"q\":1}},\"r\":2}" },
    { "unicode intact",
      "Voil\xc3\xa0 {\"name\": \"Jos\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\\u00e9\"}",
      "{\"name\":\"Jos\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xc3\xa9\"}" },
    { "empty object matches", "nothing but {}", "{}" },
    { "top-level array yields its first inner object",
      "[{\"i\": 1}, {\"i\": 2}]", "{\"i\":1}" },
    { "no JSON at all", "I could not find any workers, sorry.", NULL },
    { "balanced span that does not parse",
      "Use {name} as a placeholder", NULL },
    { "trailing garbage ignored",
      "{\"t\": true}}}} trailing ]] garbage {", "{\"t\":true}" },
    //  Our own
    { "empty text", "", NULL },
    { "unbalanced object (truncated reply)", "{\"a\": {\"b\": 1}", NULL },
    { "unclosed json fence runs to the end",
      "```json\n{\"u\": 1}", "{\"u\":1}" },
    { "fence label is case-insensitive",
      "```JSON\n{\"k\": 1}\n```", "{\"k\":1}" },
    { "other language fence is not a json fence; prose search finds it",
      "```python\nprint(1)\n```\n{\"p\": 1}", "{\"p\":1}" },
    { "array in a json fence yields its first object",
      "```json\n[1, \"x\", {\"f\": 1}, {\"g\": 2}]\n```", "{\"f\":1}" },
    { "array without objects", "[1, 2, 3]", NULL },
    { "json fence without an object is no match",
      "{\"outside\": 1}\n```json\n[1, 2]\n```", NULL },
    { "escaped backslash before closing quote",
      "{\"path\": \"C:\\\\\"} tail", "{\"path\":\"C:\\\\\"}" },
    { "brace in a string in a fence",
      "```json\n{\"msg\": \"use } carefully\", \"n\": 3}\n```", "{\"msg\":\"use } carefully\",\"n\":3}" },
    { "nested fill artifact",
      "Here are the fills:\n{\"fills\": [{\"candidate_id\": \"W-1\", \"name\": \"Ann Lee\"}]}\nLet me know.",
      "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}]}" },
    { "single quotes are not JSON", "{'a': 1}", NULL },
};

void
lh_extract_json_test (bool verbose)
{
    printf (" * lh_extract_json: ");
    size_t count = sizeof (s_cases) / sizeof (s_cases [0]);
    for (size_t index = 0; index < count; index++) {
        const s_case_t *test = &s_cases [index];
        json_t *object = lh_extract_json (test->text, strlen (test->text));
        char *got = object? json_dumps (object, JSON_COMPACT | JSON_PRESERVE_ORDER): NULL;
        bool ok = test->expect? (got && streq (got, test->expect)): (got == NULL);
        if (verbose || !ok)
            printf ("\n    %s: %s -> %s", ok? "ok": "FAIL", test->name, got? got: "(no match)");
        assert (ok);
        free (got);
        json_decref (object);
    }
    //  NULL and size 0 never match
    assert (lh_extract_json (NULL, 0) == NULL);
    printf ("OK\n");
}
