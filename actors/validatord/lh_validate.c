/*  =========================================================================
    lh_validate - the four validators: fill, email, sms, playbook; see
    lh_validate.h and docs/validatord.md
    =========================================================================
*/

#include "lh_validate.h"

//  A validation in progress: its roster, its warnings
typedef struct {
    lh_roster_t *roster;                //  read-locked roster, or NULL
    json_t *warnings;                   //  array of warning sentences
} s_check_t;


//  --------------------------------------------------------------------------
//  The tagged 422 bodies

static json_t *
s_schema (const char *field, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = zsys_vprintf (format, args);
    va_end (args);
    json_t *body = json_pack ("{s:{s:s,s:s}}", "Schema", "field", field, "reason", reason);
    zstr_free (&reason);
    return body;
}

static json_t *
s_tagged (const char *tag, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = zsys_vprintf (format, args);
    va_end (args);
    json_t *body = json_pack ("{s:{s:s}}", tag, "reason", reason);
    zstr_free (&reason);
    return body;
}


//  --------------------------------------------------------------------------
//  Quote a string as Rust's {:?} does ("a \"b\"\n"); caller frees

static char *
s_debug_quote (const char *text)
{
    size_t size = strlen (text);
    char *quoted = (char *) malloc (size * 10 + 3);
    assert (quoted);
    char *write = quoted;
    *write++ = '"';
    for (const unsigned char *scan = (const unsigned char *) text; *scan; scan++) {
        unsigned char c = *scan;
        if (c == '"' || c == '\\') {
            *write++ = '\\';
            *write++ = c;
        }
        else
        if (c == '\n') { *write++ = '\\'; *write++ = 'n'; }
        else
        if (c == '\r') { *write++ = '\\'; *write++ = 'r'; }
        else
        if (c == '\t') { *write++ = '\\'; *write++ = 't'; }
        else
        if (c < 0x20 || c == 0x7f)
            write += sprintf (write, "\\u{%x}", c);
        else
            *write++ = c;
    }
    *write++ = '"';
    *write = 0;
    return quoted;
}


//  --------------------------------------------------------------------------
//  Characters (UTF-8 code points) in a string

static size_t
s_chars (const char *text)
{
    size_t count = 0;
    for (const unsigned char *scan = (const unsigned char *) text; *scan; scan++)
        if ((*scan & 0xC0) != 0x80)
            count++;
    return count;
}


//  --------------------------------------------------------------------------
//  Compare two strings ignoring ASCII case and surrounding white space

static bool
s_same (const char *one, const char *two)
{
    while (isspace ((unsigned char) *one)) one++;
    while (isspace ((unsigned char) *two)) two++;
    size_t size_one = strlen (one), size_two = strlen (two);
    while (size_one && isspace ((unsigned char) one [size_one - 1])) size_one--;
    while (size_two && isspace ((unsigned char) two [size_two - 1])) size_two--;
    return size_one == size_two && strncasecmp (one, two, size_one) == 0;
}


//  --------------------------------------------------------------------------
//  Does word occur in text as a whole word, ignoring ASCII case?

static bool
s_has_word (const char *text, const char *word)
{
    size_t size = strlen (word);
    if (size == 0)
        return false;
    for (const char *scan = text; (scan = strcasestr (scan, word)); scan++) {
        bool before = scan == text || !isalnum ((unsigned char) scan [-1]);
        bool after = !isalnum ((unsigned char) scan [size]);
        if (before && after)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  A string member of an object, or NULL

static const char *
s_string (json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    return json_is_string (value)? json_string_value (value): NULL;
}


//  --------------------------------------------------------------------------
//  A candidate id: a non-empty string or an integer, written into buffer;
//  NULL if neither

static const char *
s_candidate_id (json_t *value, char *buffer, size_t size)
{
    if (json_is_string (value) && json_string_length (value) > 0
    &&  strlen (json_string_value (value)) == json_string_length (value))
        return json_string_value (value);
    if (json_is_integer (value)) {
        snprintf (buffer, size, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
        return buffer;
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  target_count from _context (or the artifact): 1 found, 0 absent, -1 not
//  a non-negative integer

static int
s_target_count (json_t *artifact, json_int_t *count)
{
    json_t *value = json_object_get (json_object_get (artifact, "_context"), "target_count");
    if (!value)
        value = json_object_get (artifact, "target_count");
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_integer (value) || json_integer_value (value) < 0)
        return -1;
    *count = json_integer_value (value);
    return 1;
}


//  --------------------------------------------------------------------------
//  fill: schema; completeness; existence; status; city/state/role;
//  client blacklist; duplicates; name warnings

static json_t *
s_validate_fill (s_check_t *self, json_t *artifact)
{
    char buffer [32];
    json_t *fills = json_object_get (artifact, "fills");
    if (!json_is_array (fills))
        return s_schema ("fills", "missing or not an array");
    size_t count = json_array_size (fills);
    for (size_t index = 0; index < count; index++) {
        json_t *fill = json_array_get (fills, index);
        char field [64];
        snprintf (field, sizeof (field), "fills[%zu]", index);
        if (!json_is_object (fill))
            return s_schema (field, "expected an object with candidate_id and name");
        if (!s_candidate_id (json_object_get (fill, "candidate_id"), buffer, sizeof (buffer))) {
            snprintf (field, sizeof (field), "fills[%zu].candidate_id", index);
            return s_schema (field, "missing or not a non-empty string");
        }
        if (!json_is_string (json_object_get (fill, "name"))) {
            snprintf (field, sizeof (field), "fills[%zu].name", index);
            return s_schema (field, "missing or not a string");
        }
    }
    json_int_t target = 0;
    int has_target = s_target_count (artifact, &target);
    if (has_target < 0)
        return s_schema ("_context.target_count", "must be a non-negative integer");

    if (has_target && (json_int_t) count != target)
        return s_tagged ("Completeness", "expected %" JSON_INTEGER_FORMAT
                         " fills (target_count), got %zu", target, count);

    //  Every candidate exists in the roster
    const lh_worker_t **workers = (const lh_worker_t **) calloc (count + 1, sizeof (lh_worker_t *));
    assert (workers);
    json_t *error = NULL;
    for (size_t index = 0; index < count && !error; index++) {
        const char *id = s_candidate_id (json_object_get (json_array_get (fills, index),
                                                          "candidate_id"), buffer, sizeof (buffer));
        workers [index] = self->roster? lh_roster_lookup (self->roster, id): NULL;
        if (!workers [index]) {
            char *quoted = s_debug_quote (id);
            error = s_tagged ("Consistency", "fills[%zu].candidate_id %s does not exist in worker roster",
                              index, quoted);
            free (quoted);
        }
    }
    //  Status active
    for (size_t index = 0; index < count && !error; index++)
        if (!s_same (workers [index]->status, "active")) {
            char *quoted = s_debug_quote (workers [index]->candidate_id);
            error = s_tagged ("Consistency", "fills[%zu].candidate_id %s is not active (status '%s')",
                              index, quoted, workers [index]->status);
            free (quoted);
        }
    //  City, state and role match the contract
    json_t *context = json_object_get (artifact, "_context");
    static const char *s_fields [] = { "city", "state", "role" };
    for (size_t index = 0; index < count && !error; index++)
        for (size_t which = 0; which < 3 && !error; which++) {
            const char *wanted = s_string (context, s_fields [which]);
            if (!wanted || !*wanted)
                continue;
            const char *actual = which == 0? workers [index]->city:
                                 which == 1? workers [index]->state: workers [index]->role;
            if (!s_same (actual, wanted))
                error = s_tagged ("Consistency", "%s '%s' doesn't match contract %s '%s'",
                                  s_fields [which], actual, s_fields [which], wanted);
        }
    //  Client blacklist
    const char *client = s_string (context, "client_id");
    for (size_t index = 0; index < count && !error && client; index++)
        if (lh_worker_blacklisted (workers [index], client)) {
            char *quoted = s_debug_quote (workers [index]->candidate_id);
            error = s_tagged ("Policy", "candidate %s is blacklisted by client '%s'",
                              quoted, client);
            free (quoted);
        }
    //  Duplicates (the same roster worker twice)
    for (size_t index = 1; index < count && !error; index++)
        for (size_t other = 0; other < index && !error; other++)
            if (workers [index] == workers [other]) {
                char *quoted = s_debug_quote (workers [index]->candidate_id);
                error = s_tagged ("Consistency", "fills[%zu].candidate_id %s duplicates fills[%zu]",
                                  index, quoted, other);
                free (quoted);
            }
    //  Names that differ from the roster are warnings only
    for (size_t index = 0; index < count && !error; index++) {
        const char *name = s_string (json_array_get (fills, index), "name");
        if (!s_same (name, workers [index]->name)) {
            char *given = s_debug_quote (name);
            char *roster = s_debug_quote (workers [index]->name);
            json_array_append_new (self->warnings, json_sprintf (
                "fills[%zu].name %s differs from roster name %s", index, given, roster));
            free (given);
            free (roster);
        }
    }
    free (workers);
    return error;
}


//  --------------------------------------------------------------------------
//  Does SSN-shaped text (NNN-NN-NNNN, not flanked by digits) occur in text?

bool
lh_validate_has_ssn (const char *text)
{
    static const char s_shape [] = "ddd-dd-dddd";
    size_t size = strlen (text);
    for (size_t start = 0; start + 11 <= size; start++) {
        size_t index;
        for (index = 0; index < 11; index++) {
            char c = text [start + index];
            if (s_shape [index] == 'd'? !isdigit ((unsigned char) c): c != '-')
                break;
        }
        if (index < 11)
            continue;
        bool digit_before = start > 0 && isdigit ((unsigned char) text [start - 1]);
        bool digit_after = isdigit ((unsigned char) text [start + 11]);
        if (!digit_before && !digit_after)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  A salary keyword within LH_SALARY_WINDOW characters of a $ amount: returns
//  a reason (caller frees) or NULL

static char *
s_salary (const char *text)
{
    static const char *s_keywords [] = {
        "salary", "salaries", "wage", "wages", "pay", "pays", "paid", "paying",
        "compensation", "rate", "hourly", "earn", "earns", "earnings", "bonus", NULL
    };
    for (const char *dollar = text; (dollar = strchr (dollar, '$')); dollar++) {
        const char *amount = dollar + 1;
        while (*amount == ' ')
            amount++;
        if (!isdigit ((unsigned char) *amount))
            continue;
        const char *amount_end = amount;
        while (isdigit ((unsigned char) *amount_end) || *amount_end == ','
           || (*amount_end == '.' && isdigit ((unsigned char) amount_end [1])))
            amount_end++;
        for (const char **keyword = s_keywords; *keyword; keyword++) {
            size_t size = strlen (*keyword);
            for (const char *scan = text; (scan = strcasestr (scan, *keyword)); scan++) {
                if ((scan > text && isalnum ((unsigned char) scan [-1]))
                ||  isalnum ((unsigned char) scan [size]))
                    continue;
                const char *end = scan + size;
                size_t distance = scan >= amount_end? (size_t) (scan - amount_end):
                                  end <= dollar? (size_t) (dollar - end): 0;
                if (distance <= LH_SALARY_WINDOW)
                    return zsys_sprintf ("salary keyword '%.*s' within %d characters of amount '$%.*s'",
                                         (int) size, scan, LH_SALARY_WINDOW,
                                         (int) (amount_end - amount), amount);
            }
        }
    }
    return NULL;
}


//  --------------------------------------------------------------------------
//  email and sms: schema; length; SSN; salary; the roster name of
//  _context.candidate_id

static json_t *
s_validate_message (s_check_t *self, json_t *artifact, bool sms)
{
    const char *subject = s_string (artifact, "subject");
    const char *body = s_string (artifact, "body");
    if (!sms && (!subject || !*subject))
        return s_schema ("subject", "missing or not a non-empty string");
    if (!body || !*body)
        return s_schema ("body", "missing or not a non-empty string");
    if (strlen (body) != json_string_length (json_object_get (artifact, "body")))
        return s_schema ("body", "contains a NUL character");

    size_t chars = s_chars (body);
    if (sms && chars > LH_SMS_MAX)
        return s_schema ("body", "SMS is %zu characters; the limit is %d", chars, LH_SMS_MAX);
    if (!sms && s_chars (subject) > LH_EMAIL_SUBJECT_MAX)
        return s_schema ("subject", "subject is %zu characters; the limit is %d",
                         s_chars (subject), LH_EMAIL_SUBJECT_MAX);
    if (!sms && chars > LH_EMAIL_BODY_MAX)
        return s_schema ("body", "body is %zu characters; the limit is %d",
                         chars, LH_EMAIL_BODY_MAX);

    const char *texts [2] = { body, sms? NULL: subject };
    for (int index = 0; index < 2 && texts [index]; index++)
        if (lh_validate_has_ssn (texts [index]))
            return s_tagged ("Policy", "SSN-shaped sequence");
    for (int index = 0; index < 2 && texts [index]; index++) {
        char *reason = s_salary (texts [index]);
        if (reason) {
            json_t *error = s_tagged ("Policy", "%s", reason);
            free (reason);
            return error;
        }
    }
    //  The name in the draft is the roster name of _context.candidate_id
    char buffer [32];
    json_t *context = json_object_get (artifact, "_context");
    const char *id = s_candidate_id (json_object_get (context, "candidate_id"),
                                     buffer, sizeof (buffer));
    if (!id) {
        json_array_append_new (self->warnings,
            json_string ("no _context.candidate_id: the name in the draft was not checked"));
        return NULL;
    }
    const lh_worker_t *worker = self->roster? lh_roster_lookup (self->roster, id): NULL;
    char *quoted_id = s_debug_quote (id);
    json_t *error = NULL;
    if (!worker)
        error = s_tagged ("Consistency", "_context.candidate_id %s does not exist in worker roster",
                          quoted_id);
    else {
        const char *name = s_string (artifact, "name");
        char *roster_name = s_debug_quote (worker->name);
        if (name) {
            if (!s_same (name, worker->name)) {
                char *quoted = s_debug_quote (name);
                error = s_tagged ("Consistency", "name %s doesn't match roster name %s of candidate %s",
                                  quoted, roster_name, quoted_id);
                free (quoted);
            }
        }
        else {
            //  No name field: the draft must address the worker by the
            //  roster's full name or first name
            char first [128];
            snprintf (first, sizeof (first), "%.*s", (int) strcspn (worker->name, " \t"), worker->name);
            bool named = false;
            for (int index = 0; index < 2 && texts [index] && !named; index++)
                named = s_has_word (texts [index], worker->name) || s_has_word (texts [index], first);
            if (!named && *worker->name)
                error = s_tagged ("Consistency", "draft does not name roster name %s of candidate %s",
                                  roster_name, quoted_id);
        }
        free (roster_name);
    }
    free (quoted_id);
    return error;
}


//  --------------------------------------------------------------------------
//  playbook: fingerprint; operation prefix; endorsed_names non-empty and at
//  most target_count x 2

static json_t *
s_validate_playbook (s_check_t *self, json_t *artifact)
{
    const char *fingerprint = s_string (artifact, "fingerprint");
    if (!fingerprint || !*fingerprint)
        return s_schema ("fingerprint", "missing \xe2\x80\x94 required for Phase 25 validity window");
    const char *operation = s_string (artifact, "operation");
    if (!operation || strncmp (operation, "fill: ", 6) != 0) {
        char *quoted = s_debug_quote (operation? operation: "");
        json_t *error = s_schema ("operation", "expected `fill: ...` prefix, got %s", quoted);
        free (quoted);
        return error;
    }
    json_t *names = json_object_get (artifact, "endorsed_names");
    if (names && !json_is_null (names) && !json_is_array (names))
        return s_schema ("endorsed_names", "expected an array of names");
    size_t count = json_array_size (names);
    if (count == 0)
        return s_tagged ("Completeness", "endorsed_names must be non-empty");
    json_int_t target = 0;
    int has_target = s_target_count (artifact, &target);
    if (has_target < 0)
        return s_schema ("_context.target_count", "must be a non-negative integer");
    if (has_target && (json_int_t) count > target * 2)
        return s_tagged ("Completeness", "endorsed_names (%zu) exceeds target_count \xc3\x97 2 (%"
                         JSON_INTEGER_FORMAT ")", count, target * 2);
    if (!has_target)
        json_array_append_new (self->warnings,
            json_string ("no target_count: the endorsed_names bound was not checked"));
    return NULL;
}


//  --------------------------------------------------------------------------
//  Is kind one of fill, email, sms, playbook?

bool
lh_validate_kind_known (const char *kind)
{
    return kind && (streq (kind, "fill") || streq (kind, "email")
                 || streq (kind, "sms") || streq (kind, "playbook"));
}


//  --------------------------------------------------------------------------
//  Validate an artifact of a kind: 200 report, 422 tagged error, 400

uint32_t
lh_validate (const char *kind, json_t *artifact, lh_roster_t *roster, json_t **body_p)
{
    assert (body_p);
    if (!lh_validate_kind_known (kind)) {
        char *reason = zsys_sprintf ("unknown kind '%s': expected fill, email, sms or playbook",
                                     kind? kind: "");
        *body_p = json_pack ("{s:{s:s,s:s,s:s}}", "error", "kind", "bad_request",
                             "reason", reason, "field", "kind");
        zstr_free (&reason);
        return 400;
    }
    if (!json_is_object (artifact)) {
        *body_p = s_schema ("artifact", "expected a JSON object");
        return 422;
    }
    s_check_t check = { roster, json_array () };
    if (roster)
        lh_roster_read_lock (roster);
    json_t *error = streq (kind, "fill")? s_validate_fill (&check, artifact):
                    streq (kind, "email")? s_validate_message (&check, artifact, false):
                    streq (kind, "sms")? s_validate_message (&check, artifact, true):
                    s_validate_playbook (&check, artifact);
    if (roster)
        lh_roster_read_unlock (roster);
    if (error) {
        json_decref (check.warnings);
        *body_p = error;
        return 422;
    }
    *body_p = json_pack ("{s:s,s:b,s:o}", "kind", kind, "valid", 1, "warnings", check.warnings);
    return 200;
}


//  --------------------------------------------------------------------------
//  Merge context into artifact._context; context keys win

int
lh_validate_merge_context (json_t *artifact, json_t *context)
{
    if (!json_is_object (artifact))
        return -1;
    if (!context || json_is_null (context))
        return 0;
    if (!json_is_object (context))
        return -1;
    json_t *target = json_object_get (artifact, "_context");
    if (!json_is_object (target)) {
        target = json_object ();
        json_object_set_new (artifact, "_context", target);
    }
    return json_object_update (target, context) == 0? 0: -1;
}


//  --------------------------------------------------------------------------
//  The lower-case tag of a 422 body, or "unknown"

const char *
lh_validate_error_kind (json_t *body)
{
    if (json_object_get (body, "Schema"))
        return "schema";
    if (json_object_get (body, "Completeness"))
        return "completeness";
    if (json_object_get (body, "Consistency"))
        return "consistency";
    if (json_object_get (body, "Policy"))
        return "policy";
    return "unknown";
}


//  --------------------------------------------------------------------------
//  For a fill artifact: true iff every candidate_id is in the roster (an
//  empty fills array is grounded: it names nobody)

bool
lh_validate_grounded (json_t *artifact, lh_roster_t *roster)
{
    json_t *fills = json_object_get (artifact, "fills");
    if (!json_is_array (fills))
        return false;
    if (json_array_size (fills) == 0)
        return true;
    if (!roster)
        return false;
    bool grounded = true;
    lh_roster_read_lock (roster);
    size_t index;
    json_t *fill;
    json_array_foreach (fills, index, fill) {
        char buffer [32];
        const char *id = s_candidate_id (json_object_get (fill, "candidate_id"),
                                         buffer, sizeof (buffer));
        if (!id || !lh_roster_lookup (roster, id)) {
            grounded = false;
            break;
        }
    }
    lh_roster_read_unlock (roster);
    return grounded;
}


//  --------------------------------------------------------------------------
//  Self test of this class: one row per check of every validator

typedef struct {
    const char *kind;                   //  validator
    const char *artifact;               //  artifact JSON, _context included
    uint32_t status;                    //  expected status
    const char *body;                   //  expected body, compact JSON, keys sorted
} s_case_t;

static const s_case_t s_cases [] = {
    //  fill, in the order of its checks
    { "fill", "{}", 422, "{\"Schema\":{\"field\":\"fills\",\"reason\":\"missing or not an array\"}}" },
    { "fill", "{\"fills\":{}}", 422, "{\"Schema\":{\"field\":\"fills\",\"reason\":\"missing or not an array\"}}" },
    { "fill", "{\"fills\":[3]}", 422,
      "{\"Schema\":{\"field\":\"fills[0]\",\"reason\":\"expected an object with candidate_id and name\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"},{\"name\":\"x\"}]}", 422,
      "{\"Schema\":{\"field\":\"fills[1].candidate_id\",\"reason\":\"missing or not a non-empty string\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"\",\"name\":\"x\"}]}", 422,
      "{\"Schema\":{\"field\":\"fills[0].candidate_id\",\"reason\":\"missing or not a non-empty string\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\"}]}", 422,
      "{\"Schema\":{\"field\":\"fills[0].name\",\"reason\":\"missing or not a string\"}}" },
    { "fill", "{\"fills\":[],\"_context\":{\"target_count\":\"2\"}}", 422,
      "{\"Schema\":{\"field\":\"_context.target_count\",\"reason\":\"must be a non-negative integer\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}],\"_context\":{\"target_count\":2}}", 422,
      "{\"Completeness\":{\"reason\":\"expected 2 fills (target_count), got 1\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"},{\"candidate_id\":\"W-404\",\"name\":\"Ghost\"}]}", 422,
      "{\"Consistency\":{\"reason\":\"fills[1].candidate_id \\\"W-404\\\" does not exist in worker roster\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-3\",\"name\":\"Cy Old\"}]}", 422,
      "{\"Consistency\":{\"reason\":\"fills[0].candidate_id \\\"W-3\\\" is not active (status 'inactive')\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-2\",\"name\":\"Bo Diaz\"}],\"_context\":{\"city\":\"Toledo\"}}", 422,
      "{\"Consistency\":{\"reason\":\"city 'Louisville' doesn't match contract city 'Toledo'\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}],\"_context\":{\"city\":\"toledo\",\"state\":\"KY\"}}", 422,
      "{\"Consistency\":{\"reason\":\"state 'OH' doesn't match contract state 'KY'\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}],\"_context\":{\"role\":\"picker\"}}", 422,
      "{\"Consistency\":{\"reason\":\"role 'forklift' doesn't match contract role 'picker'\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}],\"_context\":{\"client_id\":\"c-7\"}}", 422,
      "{\"Policy\":{\"reason\":\"candidate \\\"W-1\\\" is blacklisted by client 'c-7'\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"},{\"candidate_id\":\"w-1\",\"name\":\"Ann Lee\"}]}", 422,
      "{\"Consistency\":{\"reason\":\"fills[1].candidate_id \\\"W-1\\\" duplicates fills[0]\"}}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"w-1\",\"name\":\"Annie Lee\"}],"
              "\"_context\":{\"target_count\":1,\"city\":\"Toledo\",\"state\":\"oh\",\"role\":\"Forklift\",\"client_id\":\"C-1\"}}", 200,
      "{\"kind\":\"fill\",\"valid\":true,\"warnings\":[\"fills[0].name \\\"Annie Lee\\\" differs from roster name \\\"Ann Lee\\\"\"]}" },
    { "fill", "{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"ann lee\"},{\"candidate_id\":42,\"name\":\"Di Ng\"}]}", 200,
      "{\"kind\":\"fill\",\"valid\":true,\"warnings\":[]}" },

    //  email
    { "email", "{\"body\":\"Hi Ann\"}", 422, "{\"Schema\":{\"field\":\"subject\",\"reason\":\"missing or not a non-empty string\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"\"}", 422, "{\"Schema\":{\"field\":\"body\",\"reason\":\"missing or not a non-empty string\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi Ann, your SSN 123-45-6789 is on file\"}", 422,
      "{\"Policy\":{\"reason\":\"SSN-shaped sequence\"}}" },
    { "email", "{\"subject\":\"Re 123-45-6789\",\"body\":\"Hi Ann\"}", 422,
      "{\"Policy\":{\"reason\":\"SSN-shaped sequence\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi Ann, the salary is $52,000 a year.\"}", 422,
      "{\"Policy\":{\"reason\":\"salary keyword 'salary' within 40 characters of amount '$52,000'\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi Ann, $18.50 is what we pay per hour.\"}", 422,
      "{\"Policy\":{\"reason\":\"salary keyword 'pay' within 40 characters of amount '$18.50'\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi Ann\",\"_context\":{\"candidate_id\":\"W-9\"}}", 422,
      "{\"Consistency\":{\"reason\":\"_context.candidate_id \\\"W-9\\\" does not exist in worker roster\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi Bob\",\"_context\":{\"candidate_id\":\"W-1\"}}", 422,
      "{\"Consistency\":{\"reason\":\"draft does not name roster name \\\"Ann Lee\\\" of candidate \\\"W-1\\\"\"}}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hi\",\"name\":\"Bob Smith\",\"_context\":{\"candidate_id\":\"W-1\"}}", 422,
      "{\"Consistency\":{\"reason\":\"name \\\"Bob Smith\\\" doesn't match roster name \\\"Ann Lee\\\" of candidate \\\"W-1\\\"\"}}" },
    { "email", "{\"subject\":\"Shift for Ann\",\"body\":\"Call 555-123-4567 or ref 1123-45-67890. Parking is $5.\","
               "\"_context\":{\"candidate_id\":\"w-1\"}}", 200,
      "{\"kind\":\"email\",\"valid\":true,\"warnings\":[]}" },
    { "email", "{\"subject\":\"Shift\",\"body\":\"Hello there\"}", 200,
      "{\"kind\":\"email\",\"valid\":true,\"warnings\":[\"no _context.candidate_id: the name in the draft was not checked\"]}" },

    //  sms
    { "sms", "{\"text\":\"Hi\"}", 422, "{\"Schema\":{\"field\":\"body\",\"reason\":\"missing or not a non-empty string\"}}" },
    { "sms", "{\"body\":\"SSN 123-45-6789\"}", 422, "{\"Policy\":{\"reason\":\"SSN-shaped sequence\"}}" },
    { "sms", "{\"body\":\"Hourly: $21\"}", 422,
      "{\"Policy\":{\"reason\":\"salary keyword 'Hourly' within 40 characters of amount '$21'\"}}" },
    { "sms", "{\"body\":\"Ann, call 555-123-4567\",\"_context\":{\"candidate_id\":\"W-1\"}}", 200,
      "{\"kind\":\"sms\",\"valid\":true,\"warnings\":[]}" },
    { "sms", "{\"body\":\"Bo, shift at 7\",\"name\":\"Bo Diaz\",\"_context\":{\"candidate_id\":\"W-2\"}}", 200,
      "{\"kind\":\"sms\",\"valid\":true,\"warnings\":[]}" },

    //  playbook: the reasons byte-exact (em dash, multiplication sign)
    { "playbook", "{\"operation\":\"fill: x\",\"endorsed_names\":[\"a\"]}", 422,
      "{\"Schema\":{\"field\":\"fingerprint\",\"reason\":\"missing \xe2\x80\x94 required for Phase 25 validity window\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"sms_draft: hello\"}", 422,
      "{\"Schema\":{\"field\":\"operation\",\"reason\":\"expected `fill: ...` prefix, got \\\"sms_draft: hello\\\"\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\"}", 422,
      "{\"Schema\":{\"field\":\"operation\",\"reason\":\"expected `fill: ...` prefix, got \\\"\\\"\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"fill: 2 forklift Toledo\",\"endorsed_names\":[]}", 422,
      "{\"Completeness\":{\"reason\":\"endorsed_names must be non-empty\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"fill: x\"}", 422,
      "{\"Completeness\":{\"reason\":\"endorsed_names must be non-empty\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"fill: x\",\"endorsed_names\":\"a\"}", 422,
      "{\"Schema\":{\"field\":\"endorsed_names\",\"reason\":\"expected an array of names\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"fill: x\",\"endorsed_names\":[\"a\",\"b\",\"c\"],\"_context\":{\"target_count\":1}}", 422,
      "{\"Completeness\":{\"reason\":\"endorsed_names (3) exceeds target_count \xc3\x97 2 (2)\"}}" },
    { "playbook", "{\"fingerprint\":\"fp1\",\"operation\":\"fill: x\",\"endorsed_names\":[\"a\",\"b\"],\"_context\":{\"target_count\":1}}", 200,
      "{\"kind\":\"playbook\",\"valid\":true,\"warnings\":[]}" },

    //  unknown kind
    { "invoice", "{}", 400,
      "{\"error\":{\"field\":\"kind\",\"kind\":\"bad_request\",\"reason\":\"unknown kind 'invoice': expected fill, email, sms or playbook\"}}" },
    { "fill", "[1]", 422, "{\"Schema\":{\"field\":\"artifact\",\"reason\":\"expected a JSON object\"}}" },
};

void
lh_validate_test (bool verbose)
{
    printf (" * lh_validate: ");
    char dir [] = "/tmp/lh-validate-XXXXXX";
    assert (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/roster.jsonl", dir);
    FILE *file = fopen (path, "w");
    assert (file);
    fputs ("{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\",\"city\":\"Toledo\",\"state\":\"OH\",\"role\":\"forklift\","
           "\"status\":\"active\",\"blacklisted_clients\":[\"C-7\"]}\n"
           "{\"candidate_id\":\"W-2\",\"name\":\"Bo Diaz\",\"city\":\"Louisville\",\"state\":\"KY\",\"role\":\"forklift\"}\n"
           "{\"candidate_id\":\"W-3\",\"name\":\"Cy Old\",\"city\":\"Toledo\",\"state\":\"OH\",\"status\":\"inactive\"}\n"
           "{\"candidate_id\":42,\"name\":\"Di Ng\"}\n", file);
    fclose (file);
    char *error = NULL;
    lh_roster_t *roster = lh_roster_new (path, &error);
    assert (roster);

    size_t count = sizeof (s_cases) / sizeof (s_cases [0]);
    for (size_t index = 0; index < count; index++) {
        const s_case_t *test = &s_cases [index];
        json_error_t parse_error;
        json_t *artifact = json_loads (test->artifact, 0, &parse_error);
        assert (artifact);
        json_t *body = NULL;
        uint32_t status = lh_validate (test->kind, artifact, roster, &body);
        char *got = json_dumps (body, JSON_COMPACT | JSON_SORT_KEYS);
        bool ok = status == test->status && streq (got, test->body);
        if (verbose || !ok)
            printf ("\n    %s: %s %s -> %u %s", ok? "ok": "FAIL", test->kind, test->artifact, status, got);
        assert (ok);
        free (got);
        json_decref (body);
        json_decref (artifact);
    }

    //  SSN guard
    assert (lh_validate_has_ssn ("123-45-6789"));
    assert (lh_validate_has_ssn ("ssn:123-45-6789."));
    assert (!lh_validate_has_ssn ("555-123-4567"));
    assert (!lh_validate_has_ssn ("1123-45-67890"));
    assert (!lh_validate_has_ssn ("1123-45-6789"));
    assert (!lh_validate_has_ssn ("123-45-67890"));
    assert (!lh_validate_has_ssn ("123-45-678"));
    assert (!lh_validate_has_ssn (""));

    //  SMS of 160 characters passes, 161 fails (multi-byte characters count once)
    char sms [800];
    for (int length = 160; length <= 161; length++) {
        strcpy (sms, "{\"body\":\"");
        for (int index = 0; index < length; index++)
            strcat (sms, index % 2? "a": "\xc3\xa9");
        strcat (sms, "\"}");
        json_t *artifact = json_loads (sms, 0, NULL);
        assert (artifact);
        json_t *body = NULL;
        uint32_t status = lh_validate ("sms", artifact, roster, &body);
        if (length == 160)
            assert (status == 200);
        else {
            assert (status == 422);
            assert (streq (json_string_value (json_object_get (json_object_get (body, "Schema"), "reason")),
                           "SMS is 161 characters; the limit is 160"));
            assert (streq (lh_validate_error_kind (body), "schema"));
        }
        json_decref (body);
        json_decref (artifact);
    }

    //  Context merge and grounding
    json_t *artifact = json_loads ("{\"fills\":[{\"candidate_id\":\"w-2\",\"name\":\"Bo Diaz\"}],"
                                   "\"_context\":{\"city\":\"Toledo\",\"role\":\"forklift\"}}", 0, NULL);
    json_t *context = json_loads ("{\"city\":\"Louisville\",\"target_count\":1}", 0, NULL);
    assert (lh_validate_merge_context (artifact, context) == 0);
    json_t *body = NULL;
    assert (lh_validate ("fill", artifact, roster, &body) == 200);
    json_decref (body);
    assert (lh_validate_grounded (artifact, roster));
    assert (!lh_validate_grounded (artifact, NULL));
    json_t *empty = json_pack ("{s:[]}", "fills");
    assert (lh_validate_grounded (empty, roster));
    assert (lh_validate_grounded (empty, NULL));
    json_object_set_new (empty, "fills", json_string ("x"));
    assert (!lh_validate_grounded (empty, roster));
    json_decref (empty);
    json_array_append_new (json_object_get (artifact, "fills"),
                           json_pack ("{s:s,s:s}", "candidate_id", "W-404", "name", "x"));
    assert (!lh_validate_grounded (artifact, roster));
    assert (lh_validate_merge_context (artifact, NULL) == 0);
    json_decref (context);
    context = json_array ();
    assert (lh_validate_merge_context (artifact, context) == -1);
    json_decref (context);
    json_decref (artifact);
    artifact = json_object ();
    context = json_pack ("{s:i}", "target_count", 3);
    assert (lh_validate_merge_context (artifact, context) == 0);
    assert (json_integer_value (json_object_get (json_object_get (artifact, "_context"), "target_count")) == 3);
    json_decref (context);
    json_decref (artifact);

    //  Kinds and tags
    assert (lh_validate_kind_known ("playbook") && !lh_validate_kind_known (NULL));
    body = json_pack ("{s:{s:s}}", "Policy", "reason", "x");
    assert (streq (lh_validate_error_kind (body), "policy"));
    json_decref (body);

    //  An empty roster: every candidate is unknown
    artifact = json_loads ("{\"fills\":[{\"candidate_id\":\"W-1\",\"name\":\"Ann Lee\"}]}", 0, NULL);
    assert (lh_validate ("fill", artifact, NULL, &body) == 422);
    assert (streq (lh_validate_error_kind (body), "consistency"));
    json_decref (body);
    json_decref (artifact);

    lh_roster_destroy (&roster);
    unlink (path);
    rmdir (dir);
    zstr_free (&path);
    printf ("OK\n");
}
