/*  =========================================================================
    lh_distill_rules - distilld's pure functions; see lh_distill_rules.h
    =========================================================================
*/

#include "lh_distill_rules.h"
#include "lh_canon.h"

#define S_TOKENS_MAX    4096            //  tokens kept per set
#define S_TOKEN_MAX     64              //  longest token kept, bytes

const char *lh_distill_sources [LH_DISTILL_SOURCES] = {
    "distilled_facts", "distilled_procedures", "distilled_config_hints", "audit_facts",
    "contract_analyses", "mode_experiments", "scrum_reviews", "observer_escalations",
    "auto_apply", "observer_reviews", "audits", "outcomes"
};

const char *lh_distill_category_names [LH_DISTILL_CATEGORIES] = {
    "accepted", "partially_accepted", "rejected"
};

const char *lh_drift_status_names [3] = { "ok", "warn", "alert" };

//  Where a row keeps its time, task, answer; first present wins
static const char *s_time_fields [] = { "recorded_at", "created_at", "timestamp", "ts", NULL };
static const char *s_task_fields [] = { "task", "prompt", "query", "question", "title", NULL };
static const char *s_answer_fields [] = { "answer", "response", "output", "content", "text",
                                          "summary", "fix", NULL };
static const char *s_verdict_fields [] = { "verdict", "outcome", "status", "result",
                                           "final_verdict", "decision", NULL };
static const char *s_flag_fields [] = { "accepted", "passed", "success", "ok", NULL };
static const char *s_anchor_fields [] = { "id", "fact_id", "anchor", "key", NULL };

//  Verdict words, by category (compared lowercased, '-' and ' ' as '_')
static const char *s_accepted_words [] = {
    "accepted", "accept", "approved", "approve", "pass", "passed", "success", "succeeded",
    "ok", "applied", "merged", "resolved", "valid", "green", "done", NULL
};
static const char *s_partial_words [] = {
    "partially_accepted", "partial", "partially", "partial_pass", "partially_applied",
    "needs_changes", "needs_work", "warn", "warning", "mixed", "amber", NULL
};
static const char *s_rejected_words [] = {
    "rejected", "reject", "denied", "fail", "failed", "failure", "error", "invalid",
    "reverted", "rolled_back", "red", "blocked", NULL
};

//  Dropped from token sets: common words and the step verbs
static const char *s_stopwords [] = {
    "a", "all", "an", "and", "any", "are", "as", "assert", "asserts", "at", "be", "by", "can",
    "check", "checks", "do", "does", "each", "else", "ensure", "ensures", "for", "from", "has",
    "have", "if", "in", "into", "is", "it", "its", "must", "no", "not", "of", "on", "or",
    "should", "than", "that", "the", "then", "this", "to", "verify", "verifies", "was", "were",
    "when", "will", "with", NULL
};


//  --------------------------------------------------------------------------
//  Index of a source name, or -1

int
lh_distill_source_index (const char *name)
{
    for (int index = 0; name && index < LH_DISTILL_SOURCES; index++)
        if (streq (lh_distill_sources [index], name))
            return index;
    return -1;
}


//  --------------------------------------------------------------------------
//  Days since 1970-01-01 of a civil date (proleptic Gregorian)

static int64_t
s_days_from_civil (int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0? year: year - 399) / 400;
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2? -3: 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

//  The civil date of a day number
static void
s_civil_from_days (int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = (days >= 0? days: days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int) (doy - (153 * mp + 2) / 5 + 1);
    *month = (int) (mp < 10? mp + 3: mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

//  Days in a month
static int
s_month_days (int64_t year, int month)
{
    static const int days [] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap? 29: days [month - 1];
}


//  --------------------------------------------------------------------------
//  Fill time from Unix seconds and fraction digits; -1 outside 0000..9999

static int
s_time_set (lh_distill_time_t *time, int64_t seconds, const char *fraction, size_t fraction_size)
{
    int64_t days = seconds >= 0? seconds / 86400: -((-seconds + 86399) / 86400);
    int64_t rest = seconds - days * 86400;
    int64_t year;
    int month, day;
    s_civil_from_days (days, &year, &month, &day);
    if (year < 0 || year > 9999)
        return -1;
    while (fraction_size > 0 && fraction [fraction_size - 1] == '0')
        fraction_size--;
    time->seconds = seconds;
    snprintf (time->day, sizeof (time->day), "%04d-%02d-%02d", (int) year, month, day);
    snprintf (time->text, sizeof (time->text), "%sT%02d:%02d:%02d%s%.*sZ", time->day,
              (int) (rest / 3600), (int) (rest / 60 % 60), (int) (rest % 60),
              fraction_size? ".": "", (int) fraction_size, fraction);
    return 0;
}


//  --------------------------------------------------------------------------
//  Read exactly count digits; -1 if they are not there

static int
s_digits (const char **scan, int count)
{
    int value = 0;
    for (int index = 0; index < count; index++) {
        if (!isdigit ((unsigned char) **scan))
            return -1;
        value = value * 10 + (**scan - '0');
        (*scan)++;
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Parse an RFC 3339 date-time

static int
s_time_rfc3339 (const char *text, size_t size, lh_distill_time_t *time)
{
    if (size < 20 || size > 40 || memchr (text, 0, size))
        return -1;
    char copy [48];
    memcpy (copy, text, size);
    copy [size] = 0;
    const char *scan = copy;
    int year = s_digits (&scan, 4);
    if (year < 0 || *scan++ != '-')
        return -1;
    int month = s_digits (&scan, 2);
    if (month < 1 || month > 12 || *scan++ != '-')
        return -1;
    int day = s_digits (&scan, 2);
    if (day < 1 || day > s_month_days (year, month))
        return -1;
    if (*scan != 'T' && *scan != 't' && *scan != ' ')
        return -1;
    scan++;
    int hour = s_digits (&scan, 2);
    if (hour < 0 || hour > 23 || *scan++ != ':')
        return -1;
    int minute = s_digits (&scan, 2);
    if (minute < 0 || minute > 59 || *scan++ != ':')
        return -1;
    int second = s_digits (&scan, 2);
    if (second < 0 || second > 59)
        return -1;
    const char *fraction = "";
    size_t fraction_size = 0;
    if (*scan == '.') {
        fraction = ++scan;
        while (isdigit ((unsigned char) *scan))
            scan++;
        fraction_size = scan - fraction;
        if (fraction_size < 1 || fraction_size > 9)
            return -1;
    }
    int offset = 0;
    if (*scan == 'Z' || *scan == 'z')
        scan++;
    else
    if (*scan == '+' || *scan == '-') {
        int sign = *scan++ == '-'? -1: 1;
        int hours = s_digits (&scan, 2);
        if (hours < 0 || hours > 23 || *scan++ != ':')
            return -1;
        int minutes = s_digits (&scan, 2);
        if (minutes < 0 || minutes > 59)
            return -1;
        offset = sign * (hours * 3600 + minutes * 60);
    }
    else
        return -1;
    if (*scan)
        return -1;
    int64_t seconds = s_days_from_civil (year, month, day) * 86400
                    + hour * 3600 + minute * 60 + second - offset;
    return s_time_set (time, seconds, fraction, fraction_size);
}


//  --------------------------------------------------------------------------
//  Epoch milliseconds to a time

static int
s_time_epoch_ms (int64_t ms, lh_distill_time_t *time)
{
    int64_t seconds = ms >= 0? ms / 1000: -((-ms + 999) / 1000);
    char fraction [4];
    snprintf (fraction, sizeof (fraction), "%03d", (int) (ms - seconds * 1000));
    return s_time_set (time, seconds, fraction, 3);
}


//  --------------------------------------------------------------------------
//  Parse a time value: RFC 3339 text or epoch seconds / milliseconds

int
lh_distill_time_parse (const json_t *value, lh_distill_time_t *time)
{
    assert (time);
    if (json_is_integer (value)) {
        json_int_t number = json_integer_value (value);
        if (number > 1000000000000000LL || number < -1000000000000000LL)
            return -1;
        if (number >= 100000000000LL || number <= -100000000000LL)
            return s_time_epoch_ms (number, time);
        return s_time_set (time, number, "", 0);
    }
    if (json_is_real (value)) {
        double number = json_real_value (value);
        if (!(fabs (number) < 1e15))
            return -1;
        if (fabs (number) >= 1e11)
            return s_time_epoch_ms ((int64_t) llround (number), time);
        return s_time_epoch_ms ((int64_t) llround (number * 1000), time);
    }
    if (json_is_string (value)) {
        const char *text = json_string_value (value);
        size_t size = json_string_length (value);
        size_t index = text [0] == '-'? 1: 0;
        bool digits = size > index && size - index <= 16;
        for (size_t scan = index; digits && scan < size; scan++)
            digits = isdigit ((unsigned char) text [scan]);
        if (digits) {
            json_t *number = json_integer (strtoll (text, NULL, 10));
            int rc = lh_distill_time_parse (number, time);
            json_decref (number);
            return rc;
        }
        return s_time_rfc3339 (text, size, time);
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Is text a calendar day "YYYY-MM-DD"?

bool
lh_distill_day_valid (const char *text)
{
    if (!text || strlen (text) != 10)
        return false;
    char *full = zsys_sprintf ("%sT00:00:00Z", text);
    lh_distill_time_t time;
    bool valid = s_time_rfc3339 (full, strlen (full), &time) == 0 && streq (time.day, text);
    zstr_free (&full);
    return valid;
}


//  --------------------------------------------------------------------------
//  The row's own time

int
lh_distill_row_time (const json_t *row, lh_distill_time_t *time, const char **field_p)
{
    if (field_p)
        *field_p = NULL;
    for (const char **field = s_time_fields; *field; field++) {
        json_t *value = json_object_get (row, *field);
        if (!value || json_is_null (value))
            continue;
        if (field_p)
            *field_p = *field;
        return lh_distill_time_parse (value, time) == 0? 0: -1;
    }
    return 1;
}


//  --------------------------------------------------------------------------
//  The first non-empty string among fields

static const char *
s_first_string (const json_t *row, const char **fields)
{
    for (const char **field = fields; *field; field++) {
        const char *text = json_string_value (json_object_get (row, *field));
        if (text && *text)
            return text;
    }
    return NULL;
}

//  The task text of a row
const char *
lh_distill_row_task (const json_t *row)
{
    return s_first_string (row, s_task_fields);
}

//  The answer text of a row
const char *
lh_distill_row_answer (const json_t *row)
{
    return s_first_string (row, s_answer_fields);
}


//  --------------------------------------------------------------------------
//  A task's normal form (caller frees)

char *
lh_distill_task_normalize (const char *task)
{
    size_t size = strlen (task);
    char *normal = (char *) malloc (size + 1);
    assert (normal);
    size_t used = 0;
    bool space = false;
    for (size_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char) task [index];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            space = used > 0;
            continue;
        }
        if (space)
            normal [used++] = ' ';
        space = false;
        normal [used++] = (char) (c < 0x80? tolower (c): c);
    }
    normal [used] = 0;
    return normal;
}


//  --------------------------------------------------------------------------
//  SHA-256 hex of a task's normal form

void
lh_distill_task_hash (const char *task, char *hex)
{
    char *normal = lh_distill_task_normalize (task);
    lh_canon_sha256_bytes (normal, strlen (normal), hex);
    free (normal);
}


//  --------------------------------------------------------------------------
//  The evidence record of one source row, or NULL with *skip

json_t *
lh_distill_transform (const json_t *row, const char *source, uint64_t line_offset,
                      const char *recorded_at, lh_distill_skip_t *skip)
{
    assert (source && skip);
    *skip = LH_DISTILL_OK;
    if (!json_is_object (row)) {
        *skip = LH_DISTILL_BAD_ROW;
        return NULL;
    }
    lh_distill_time_t time;
    int rc = lh_distill_row_time (row, &time, NULL);
    if (rc) {
        *skip = rc > 0? LH_DISTILL_NO_TIME: LH_DISTILL_BAD_TIME;
        return NULL;
    }
    char sig_hash [65];
    if (lh_canon_sha256_hex (row, sig_hash)) {
        *skip = LH_DISTILL_BAD_ROW;
        return NULL;
    }
    const char *task = lh_distill_row_task (row);
    char task_hash [65];
    if (task)
        lh_distill_task_hash (task, task_hash);
    char *source_file = zsys_sprintf ("data/_kb/%s.jsonl", source);
    json_t *record = json_pack ("{s:s,s:s,s:s,s:s,s:O,s:{s:s,s:I,s:s,s:s}}",
        "schema", LH_DISTILL_EVIDENCE,
        "source", source,
        "event_time", time.text,
        "day", time.day,
        "row", row,
        "provenance",
            "source_file", source_file,
            "line_offset", (json_int_t) line_offset,
            "sig_hash", sig_hash,
            "recorded_at", recorded_at? recorded_at: time.text);
    assert (record);
    zstr_free (&source_file);
    json_object_set_new (record, "task", task? json_string (task): json_null ());
    json_object_set_new (record, "task_hash", task? json_string (task_hash): json_null ());
    return record;
}


//  --------------------------------------------------------------------------
//  Is word (lowercased, '-' and ' ' as '_') in the list?

static bool
s_word_in (const char *text, const char **words)
{
    char word [40];
    size_t size = strlen (text);
    if (size == 0 || size >= sizeof (word))
        return false;
    for (size_t index = 0; index <= size; index++) {
        char c = (char) tolower ((unsigned char) text [index]);
        word [index] = c == '-' || c == ' '? '_': c;
    }
    for (const char **scan = words; *scan; scan++)
        if (streq (*scan, word))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  The category a verdict names; -1 if none

static int
s_verdict (const json_t *row)
{
    for (const char **field = s_verdict_fields; *field; field++) {
        const char *text = json_string_value (json_object_get (row, *field));
        if (!text)
            continue;
        if (s_word_in (text, s_accepted_words))
            return LH_DISTILL_ACCEPTED;
        if (s_word_in (text, s_partial_words))
            return LH_DISTILL_PARTIAL;
        if (s_word_in (text, s_rejected_words))
            return LH_DISTILL_REJECTED;
    }
    for (const char **field = s_flag_fields; *field; field++) {
        json_t *flag = json_object_get (row, *field);
        if (json_is_boolean (flag))
            return json_is_true (flag)? LH_DISTILL_ACCEPTED: LH_DISTILL_REJECTED;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Category of a value in 0..1: >= 0.8 accepted, >= 0.4 partial

static lh_distill_category_t
s_band (double value)
{
    return value >= 0.8? LH_DISTILL_ACCEPTED: value >= 0.4? LH_DISTILL_PARTIAL: LH_DISTILL_REJECTED;
}


//  --------------------------------------------------------------------------
//  Score a row; 0 scored, 1 not scorable

int
lh_distill_score_row (const json_t *row, lh_distill_known_fn *known, void *arg,
                  lh_distill_score_t *score)
{
    assert (score);
    memset (score, 0, sizeof (*score));
    json_t *anchors = json_object_get (row, "anchors");
    for (size_t index = 0; index < json_array_size (anchors); index++) {
        json_t *item = json_array_get (anchors, index);
        const char *anchor = json_is_string (item)? json_string_value (item):
                             s_first_string (item, (const char *[]) { "id", "anchor", "text", NULL });
        if (!anchor || !*anchor)
            continue;
        score->anchors++;
        if (known && known (arg, anchor))
            score->grounded++;
    }
    score->grounding = score->anchors? (double) score->grounded / score->anchors: 0;
    int verdict = s_verdict (row);
    json_t *number = json_object_get (row, "score");
    if (verdict >= 0) {
        score->category = (lh_distill_category_t) verdict;
        score->basis = "verdict";
    }
    else
    if (json_is_number (number) && json_number_value (number) >= 0
    &&  json_number_value (number) <= 1) {
        score->category = s_band (json_number_value (number));
        score->basis = "score";
    }
    else
    if (score->anchors) {
        score->category = s_band (score->grounding);
        score->basis = "anchors";
        return 0;
    }
    else
        return 1;
    //  An acceptance that names anchors it cannot ground is only partial
    if (score->category == LH_DISTILL_ACCEPTED && score->anchors && score->grounding < 0.5)
        score->category = LH_DISTILL_PARTIAL;
    return 0;
}


//  --------------------------------------------------------------------------
//  The anchors a knowledge row provides

size_t
lh_distill_row_anchors (const json_t *row, void (*fn) (void *arg, const char *anchor), void *arg)
{
    size_t count = 0;
    for (const char **field = s_anchor_fields; *field; field++) {
        const char *text = json_string_value (json_object_get (row, *field));
        if (text && *text) {
            fn (arg, text);
            count++;
        }
    }
    return count;
}


//  --------------------------------------------------------------------------
//  Compare two category distributions

lh_drift_status_t
lh_distill_drift_compare (const uint64_t *previous, const uint64_t *current,
                  double warn_pct, double alert_pct,
                  double *swing, lh_drift_status_t *status)
{
    uint64_t previous_total = 0, current_total = 0;
    for (int index = 0; index < LH_DISTILL_CATEGORIES; index++) {
        previous_total += previous [index];
        current_total += current [index];
    }
    lh_drift_status_t worst = LH_DRIFT_OK;
    for (int index = 0; index < LH_DISTILL_CATEGORIES; index++) {
        double before = previous_total? 100.0 * previous [index] / previous_total: 0;
        double now = current_total? 100.0 * current [index] / current_total: 0;
        //  Rounded to 1e-9 points, so 30.000000000000004 is 30
        swing [index] = round ((now - before) * 1e9) / 1e9;
        double size = fabs (swing [index]);
        status [index] = size > alert_pct? LH_DRIFT_ALERT: size > warn_pct? LH_DRIFT_WARN: LH_DRIFT_OK;
        if (status [index] > worst)
            worst = status [index];
    }
    return worst;
}


//  --------------------------------------------------------------------------
//  Is a token a stopword?

static bool
s_stopword (const char *token)
{
    for (const char **scan = s_stopwords; *scan; scan++)
        if (streq (*scan, token))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Insert a token, keeping the set sorted and unique

static void
s_tokens_insert (lh_distill_tokens_t *self, const char *token)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = (low + high) / 2;
        int rc = strcmp (self->items [middle], token);
        if (rc == 0)
            return;
        if (rc < 0)
            low = middle + 1;
        else
            high = middle;
    }
    if (self->count >= S_TOKENS_MAX)
        return;
    if ((self->count & (self->count - 1)) == 0) {
        size_t max = self->count? self->count * 2: 8;
        self->items = (char **) realloc (self->items, max * sizeof (char *));
        assert (self->items);
    }
    memmove (self->items + low + 1, self->items + low, (self->count - low) * sizeof (char *));
    self->items [low] = strdup (token);
    self->count++;
}


//  --------------------------------------------------------------------------
//  Add the tokens of a text

void
lh_distill_tokens_add (lh_distill_tokens_t *self, const char *text)
{
    assert (self);
    char token [S_TOKEN_MAX + 1];
    size_t size = 0;
    for (const char *scan = text? text: ""; ; scan++) {
        unsigned char c = (unsigned char) *scan;
        if (isalnum (c) && c < 0x80) {
            if (size < S_TOKEN_MAX)
                token [size++] = (char) tolower (c);
            continue;
        }
        if (size >= 2) {
            token [size] = 0;
            if (!s_stopword (token))
                s_tokens_insert (self, token);
        }
        size = 0;
        if (!c)
            break;
    }
}

//  Forget all tokens
void
lh_distill_tokens_reset (lh_distill_tokens_t *self)
{
    for (size_t index = 0; index < self->count; index++)
        free (self->items [index]);
    free (self->items);
    self->items = NULL;
    self->count = 0;
}


//  --------------------------------------------------------------------------
//  Tokens two sorted sets share

static size_t
s_tokens_common (const lh_distill_tokens_t *a, const lh_distill_tokens_t *b)
{
    size_t common = 0, one = 0, two = 0;
    while (one < a->count && two < b->count) {
        int rc = strcmp (a->items [one], b->items [two]);
        if (rc == 0) {
            common++;
            one++;
            two++;
        }
        else
        if (rc < 0)
            one++;
        else
            two++;
    }
    return common;
}

//  Token Jaccard of two sets
double
lh_distill_jaccard (const lh_distill_tokens_t *a, const lh_distill_tokens_t *b)
{
    size_t common = s_tokens_common (a, b);
    size_t all = a->count + b->count - common;
    return all? (double) common / all: 0;
}

//  Do two sets share a token?
bool
lh_distill_tokens_share (const lh_distill_tokens_t *a, const lh_distill_tokens_t *b)
{
    return s_tokens_common (a, b) > 0;
}


//  --------------------------------------------------------------------------
//  Is this line a validation step?

bool
lh_distill_step_line (const char *line, size_t size, size_t *start)
{
    static const char *verbs [] = { "verify", "verifies", "check", "checks", "assert",
                                    "asserts", "ensure", "ensures", NULL };
    size_t index = 0;
    while (index < size && (line [index] == ' ' || line [index] == '\t'))
        index++;
    if (index < size && strchr ("-*+", line [index])) {
        index++;
        while (index < size && (line [index] == ' ' || line [index] == '\t'))
            index++;
    }
    else
    if (index < size && isdigit ((unsigned char) line [index])) {
        size_t digits = index;
        while (digits < size && isdigit ((unsigned char) line [digits]))
            digits++;
        if (digits < size && (line [digits] == '.' || line [digits] == ')')) {
            index = digits + 1;
            while (index < size && (line [index] == ' ' || line [index] == '\t'))
                index++;
        }
    }
    size_t word = index;
    while (word < size && isalpha ((unsigned char) line [word]))
        word++;
    for (const char **verb = verbs; *verb; verb++)
        if (word - index == strlen (*verb) && strncasecmp (line + index, *verb, word - index) == 0) {
            if (start)
                *start = index;
            return true;
        }
    return false;
}


//  --------------------------------------------------------------------------
//  Find a phrase in text, both ASCII-lowercased, as whole words

static bool
s_phrase_in (const char *text, const char *phrase, size_t phrase_size)
{
    if (phrase_size == 0)
        return false;
    size_t size = strlen (text);
    for (size_t index = 0; index + phrase_size <= size; index++) {
        if (strncasecmp (text + index, phrase, phrase_size) != 0)
            continue;
        bool before = index == 0 || !isalnum ((unsigned char) text [index - 1]);
        bool after = index + phrase_size == size
                  || !isalnum ((unsigned char) text [index + phrase_size]);
        if (before && after)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  The deterministic gate on an answer

void
lh_distill_gate (const char *answer, size_t min_chars, const char *hedges,
                 const lh_distill_tokens_t *steps, lh_distill_gate_t *gate)
{
    assert (gate);
    memset (gate, 0, sizeof (*gate));
    if (!answer)
        answer = "";
    //  Characters, not bytes, with the blanks at either end left out
    const char *first = answer;
    while (*first && isspace ((unsigned char) *first))
        first++;
    const char *last = first + strlen (first);
    while (last > first && isspace ((unsigned char) last [-1]))
        last--;
    for (const char *scan = first; scan < last; scan++)
        if (((unsigned char) *scan & 0xC0) != 0x80)
            gate->chars++;
    gate->long_enough = gate->chars >= min_chars;
    //  Hedging phrases: comma-separated, blanks around each ignored
    const char *scan = hedges? hedges: "";
    while (*scan && !gate->hedge [0]) {
        const char *comma = strchr (scan, ',');
        const char *end = comma? comma: scan + strlen (scan);
        const char *phrase = scan;
        while (phrase < end && isspace ((unsigned char) *phrase))
            phrase++;
        const char *phrase_end = end;
        while (phrase_end > phrase && isspace ((unsigned char) phrase_end [-1]))
            phrase_end--;
        if (s_phrase_in (answer, phrase, phrase_end - phrase)) {
            snprintf (gate->hedge, sizeof (gate->hedge), "%.*s", (int) (phrase_end - phrase), phrase);
        }
        scan = comma? comma + 1: end;
    }
    if (steps && steps->count) {
        lh_distill_tokens_t tokens = { NULL, 0 };
        lh_distill_tokens_add (&tokens, answer);
        gate->shares_step = lh_distill_tokens_share (&tokens, steps);
        lh_distill_tokens_reset (&tokens);
    }
    else
        gate->shares_step = true;
    gate->passed = gate->long_enough && !gate->hedge [0] && gate->shares_step;
}


//  --------------------------------------------------------------------------
//  Self test of this class

static bool
s_test_known (void *arg, const char *anchor)
{
    return streq (anchor, "F-1") || streq (anchor, "F-2");
}

//  Collect anchors into a list
static void
s_test_collect (void *arg, const char *anchor)
{
    zlist_append ((zlist_t *) arg, (void *) anchor);
}

void
lh_distill_rules_test (bool verbose)
{
    printf (" * lh_distill_rules: ");

    //  Times: every accepted form, normalised; every refused one
    struct {
        const char *json;
        const char *text;               //  normalised, or NULL = refused
        const char *day;
    } times [] = {
        { "\"2026-01-02T03:04:05Z\"", "2026-01-02T03:04:05Z", "2026-01-02" },
        { "\"2026-01-02t03:04:05.250z\"", "2026-01-02T03:04:05.25Z", "2026-01-02" },
        { "\"2026-01-02 03:04:05.000Z\"", "2026-01-02T03:04:05Z", "2026-01-02" },
        { "\"2026-01-02T01:30:00+02:00\"", "2026-01-01T23:30:00Z", "2026-01-01" },
        { "\"2025-12-31T22:00:00-03:00\"", "2026-01-01T01:00:00Z", "2026-01-01" },
        { "\"2024-02-29T12:00:00.123456789Z\"", "2024-02-29T12:00:00.123456789Z", "2024-02-29" },
        { "1767323045", "2026-01-02T03:04:05Z", "2026-01-02" },
        { "1767323045250", "2026-01-02T03:04:05.25Z", "2026-01-02" },
        { "1767323045.5", "2026-01-02T03:04:05.5Z", "2026-01-02" },
        { "\"1767323045\"", "2026-01-02T03:04:05Z", "2026-01-02" },
        { "0", "1970-01-01T00:00:00Z", "1970-01-01" },
        { "-1", "1969-12-31T23:59:59Z", "1969-12-31" },
        { "-1500", "1969-12-31T23:35:00Z", "1969-12-31" },
        { "\"2023-02-29T00:00:00Z\"", NULL, NULL },
        { "\"2026-01-02T03:04:05\"", NULL, NULL },
        { "\"2026-01-02\"", NULL, NULL },
        { "\"2026-13-02T03:04:05Z\"", NULL, NULL },
        { "\"2026-01-02T24:00:00Z\"", NULL, NULL },
        { "\"2026-01-02T03:04:60Z\"", NULL, NULL },
        { "\"2026-01-02T03:04:05.Z\"", NULL, NULL },
        { "\"2026-01-02T03:04:05Z junk\"", NULL, NULL },
        { "\"yesterday\"", NULL, NULL },
        { "\"\"", NULL, NULL },
        { "true", NULL, NULL },
        { "[]", NULL, NULL },
        { "1e300", NULL, NULL },
        { "9000000000000000", NULL, NULL },
    };
    for (size_t index = 0; index < sizeof (times) / sizeof (times [0]); index++) {
        json_t *value = json_loads (times [index].json, JSON_DECODE_ANY, NULL);
        assert (value);
        lh_distill_time_t time;
        int rc = lh_distill_time_parse (value, &time);
        if (verbose)
            printf ("\n    %s -> %d %s", times [index].json, rc, rc? "": time.text);
        if (times [index].text) {
            if (rc != 0 || !streq (time.text, times [index].text) || !streq (time.day, times [index].day)) {
                fprintf (stderr, "time %s: %d %s\n", times [index].json, rc, rc? "": time.text);
                assert (false);
            }
        }
        else
            assert (rc == -1);
        json_decref (value);
    }
    assert (lh_distill_day_valid ("2024-02-29") && !lh_distill_day_valid ("2023-02-29"));
    assert (!lh_distill_day_valid ("2024-2-29") && !lh_distill_day_valid (NULL));
    assert (!lh_distill_day_valid ("2024-02-29T") && !lh_distill_day_valid ("20240229xx"));
    //  The first time field present wins, even when it does not parse
    json_t *row = json_loads ("{\"ts\": 0, \"created_at\": \"2026-03-04T00:00:00Z\"}", 0, NULL);
    lh_distill_time_t time;
    const char *field;
    assert (lh_distill_row_time (row, &time, &field) == 0 && streq (field, "created_at"));
    assert (streq (time.day, "2026-03-04"));
    json_object_set_new (row, "recorded_at", json_null ());
    assert (lh_distill_row_time (row, &time, &field) == 0 && streq (field, "created_at"));
    json_object_set_new (row, "recorded_at", json_string ("soon"));
    assert (lh_distill_row_time (row, &time, &field) == -1 && streq (field, "recorded_at"));
    json_decref (row);
    row = json_loads ("{\"when\": \"2026-03-04T00:00:00Z\"}", 0, NULL);
    assert (lh_distill_row_time (row, &time, &field) == 1 && field == NULL);
    json_decref (row);

    //  Tasks: normal form and hash ignore case and spacing
    char *normal = lh_distill_task_normalize ("  Fix\tthe  BUILD\n on CI  ");
    assert (streq (normal, "fix the build on ci"));
    free (normal);
    char one [65], two [65];
    lh_distill_task_hash ("Fix the build", one);
    lh_distill_task_hash ("  fix   THE build ", two);
    assert (streq (one, two));
    lh_distill_task_hash ("Fix the builds", two);
    assert (!streq (one, two));

    //  The transform: pure, provenance always written, offset 0 included
    row = json_loads ("{\"task\": \"Fix the build\", \"verdict\": \"accepted\", "
                      "\"ts\": 1767323045, \"b\": [1, 2.5]}", 0, NULL);
    lh_distill_skip_t skip;
    json_t *record = lh_distill_transform (row, "outcomes", 0, NULL, &skip);
    assert (record && skip == LH_DISTILL_OK);
    char *text = lh_canon_text (record, NULL);
    json_t *again = lh_distill_transform (row, "outcomes", 0, NULL, &skip);
    char *text_again = lh_canon_text (again, NULL);
    assert (streq (text, text_again));
    if (verbose)
        printf ("\n    %s", text);
    json_t *provenance = json_object_get (record, "provenance");
    assert (json_integer_value (json_object_get (provenance, "line_offset")) == 0);
    assert (json_object_get (provenance, "line_offset"));
    assert (streq (json_string_value (json_object_get (provenance, "source_file")),
                   "data/_kb/outcomes.jsonl"));
    assert (streq (json_string_value (json_object_get (provenance, "recorded_at")),
                   "2026-01-02T03:04:05Z"));
    assert (streq (json_string_value (json_object_get (record, "day")), "2026-01-02"));
    char sig [65];
    lh_canon_sha256_hex (row, sig);
    assert (streq (json_string_value (json_object_get (provenance, "sig_hash")), sig));
    assert (streq (json_string_value (json_object_get (record, "task_hash")), one));
    free (text);
    free (text_again);
    json_decref (again);
    json_decref (record);
    //  The caller's recorded_at, never the clock
    record = lh_distill_transform (row, "outcomes", 7, "2030-01-01T00:00:00Z", &skip);
    provenance = json_object_get (record, "provenance");
    assert (streq (json_string_value (json_object_get (provenance, "recorded_at")),
                   "2030-01-01T00:00:00Z"));
    assert (json_integer_value (json_object_get (provenance, "line_offset")) == 7);
    assert (streq (json_string_value (json_object_get (record, "day")), "2026-01-02"));
    json_decref (record);
    json_object_del (row, "ts");
    assert (lh_distill_transform (row, "outcomes", 1, NULL, &skip) == NULL && skip == LH_DISTILL_NO_TIME);
    json_object_set_new (row, "created_at", json_string ("later"));
    assert (lh_distill_transform (row, "outcomes", 1, NULL, &skip) == NULL && skip == LH_DISTILL_BAD_TIME);
    json_decref (row);
    json_t *array = json_array ();
    assert (lh_distill_transform (array, "outcomes", 1, NULL, &skip) == NULL && skip == LH_DISTILL_BAD_ROW);
    json_decref (array);

    //  Scores: verdicts, scores, anchors, the demotion, unscorable rows
    struct {
        const char *json;
        int rc;
        int category;
        double grounding;
    } scores [] = {
        { "{\"verdict\": \"Accepted\"}", 0, LH_DISTILL_ACCEPTED, 0 },
        { "{\"outcome\": \"needs-changes\"}", 0, LH_DISTILL_PARTIAL, 0 },
        { "{\"status\": \"FAILED\"}", 0, LH_DISTILL_REJECTED, 0 },
        { "{\"status\": \"queued\", \"result\": \"pass\"}", 0, LH_DISTILL_ACCEPTED, 0 },
        { "{\"passed\": false}", 0, LH_DISTILL_REJECTED, 0 },
        { "{\"score\": 0.85}", 0, LH_DISTILL_ACCEPTED, 0 },
        { "{\"score\": 0.5}", 0, LH_DISTILL_PARTIAL, 0 },
        { "{\"score\": 0.1}", 0, LH_DISTILL_REJECTED, 0 },
        { "{\"score\": 7}", 1, 0, 0 },
        { "{\"anchors\": [\"F-1\", \"F-2\"]}", 0, LH_DISTILL_ACCEPTED, 1 },
        { "{\"anchors\": [\"F-1\", {\"id\": \"F-9\"}]}", 0, LH_DISTILL_PARTIAL, 0.5 },
        { "{\"anchors\": [\"F-8\", \"F-9\"]}", 0, LH_DISTILL_REJECTED, 0 },
        { "{\"verdict\": \"accepted\", \"anchors\": [\"F-8\", \"F-9\", \"F-1\"]}", 0, LH_DISTILL_PARTIAL, 1.0 / 3 },
        { "{\"verdict\": \"accepted\", \"anchors\": [\"F-2\", \"F-9\"]}", 0, LH_DISTILL_ACCEPTED, 0.5 },
        { "{\"verdict\": \"rejected\", \"anchors\": [\"F-1\"]}", 0, LH_DISTILL_REJECTED, 1 },
        { "{\"verdict\": \"maybe\"}", 1, 0, 0 },
        { "{\"task\": \"x\"}", 1, 0, 0 },
    };
    for (size_t index = 0; index < sizeof (scores) / sizeof (scores [0]); index++) {
        row = json_loads (scores [index].json, 0, NULL);
        assert (row);
        lh_distill_score_t score;
        int rc = lh_distill_score_row (row, s_test_known, NULL, &score);
        if (rc != scores [index].rc || (rc == 0 && ((int) score.category != scores [index].category
                                                 || fabs (score.grounding - scores [index].grounding) > 1e-9))) {
            fprintf (stderr, "score %s: %d %d %g\n", scores [index].json, rc, score.category,
                     score.grounding);
            assert (false);
        }
        json_decref (row);
    }
    zlist_t *anchors = zlist_new ();
    row = json_loads ("{\"id\": \"F-1\", \"key\": \"db.pool\", \"anchor\": \"\"}", 0, NULL);
    assert (lh_distill_row_anchors (row, s_test_collect, anchors) == 2);
    assert (streq ((char *) zlist_first (anchors), "F-1"));
    json_decref (row);
    zlist_destroy (&anchors);

    //  Drift: the swing of a share in points; over 20 warn, over 40 alert
    struct {
        uint64_t previous [3];
        uint64_t current [3];
        lh_drift_status_t status;
        double swing;                   //  of accepted
    } drifts [] = {
        { { 50, 30, 20 }, { 55, 25, 20 }, LH_DRIFT_OK, 5 },
        { { 50, 30, 20 }, { 80, 0, 20 }, LH_DRIFT_WARN, 30 },
        { { 50, 30, 20 }, { 0, 80, 20 }, LH_DRIFT_ALERT, -50 },
        { { 5, 3, 2 }, { 71, 29, 0 }, LH_DRIFT_WARN, 21 },
        { { 50, 50, 0 }, { 70, 30, 0 }, LH_DRIFT_OK, 20 },
        { { 50, 50, 0 }, { 90, 10, 0 }, LH_DRIFT_WARN, 40 },
        { { 0, 0, 0 }, { 1, 0, 0 }, LH_DRIFT_ALERT, 100 },
    };
    for (size_t index = 0; index < sizeof (drifts) / sizeof (drifts [0]); index++) {
        double swing [3];
        lh_drift_status_t status [3];
        lh_drift_status_t worst = lh_distill_drift_compare (drifts [index].previous, drifts [index].current,
                                                    20, 40, swing, status);
        if (worst != drifts [index].status || fabs (swing [0] - drifts [index].swing) > 1e-9) {
            fprintf (stderr, "drift %zu: %s %g\n", index, lh_drift_status_names [worst], swing [0]);
            assert (false);
        }
    }

    //  Tokens and Jaccard
    lh_distill_tokens_t a = { NULL, 0 }, b = { NULL, 0 };
    lh_distill_tokens_add (&a, "Fix the flaky build on CI, then fix it again");
    assert (a.count == 5);              //  again build ci fix flaky
    assert (streq (a.items [0], "again") && streq (a.items [4], "flaky"));
    lh_distill_tokens_add (&b, "flaky build: retry the CI");
    assert (fabs (lh_distill_jaccard (&a, &b) - 3.0 / 6) < 1e-9);
    assert (lh_distill_tokens_share (&a, &b));
    lh_distill_tokens_reset (&b);
    assert (lh_distill_jaccard (&a, &b) == 0 && !lh_distill_tokens_share (&a, &b));
    assert (lh_distill_jaccard (&b, &b) == 0);

    //  Validation-step lines
    struct {
        const char *line;
        bool step;
    } steps [] = {
        { "Verify the pool size is 20", true },
        { "  - check that the log rotates", true },
        { "3. Assert no 5xx in the last hour", true },
        { "2) ENSURE backups ran", true },
        { "* ensures: idempotent", true },
        { "Checkout the branch", false },
        { "We verify later", false },
        { "verification", false },
        { "", false },
    };
    for (size_t index = 0; index < sizeof (steps) / sizeof (steps [0]); index++)
        assert (lh_distill_step_line (steps [index].line, strlen (steps [index].line), NULL)
                == steps [index].step);

    //  The gate
    lh_distill_tokens_t step_tokens = { NULL, 0 };
    lh_distill_tokens_add (&step_tokens, "Verify the pool size is 20");
    const char *hedges = "i'm not sure, maybe ,as an ai";
    lh_distill_gate_t gate;
    const char *good = "Raise the connection pool size to 20 in config/db.yml and restart the "
                       "service; the timeouts stop.";
    lh_distill_gate (good, 80, hedges, &step_tokens, &gate);
    assert (gate.passed && gate.long_enough && !gate.hedge [0] && gate.shares_step);
    lh_distill_gate ("Raise the pool to 20.", 80, hedges, &step_tokens, &gate);
    assert (!gate.passed && !gate.long_enough && gate.chars == 21);
    const char *hedging = "I'm not sure, but raising the connection pool size to 20 in config/db.yml "
                          "might help with timeouts.";
    lh_distill_gate (hedging, 80, hedges, &step_tokens, &gate);
    assert (!gate.passed && gate.long_enough && streq (gate.hedge, "i'm not sure"));
    lh_distill_gate ("Maybelline is a brand; raise the connection pool size to 20 in config/db.yml "
                     "and restart the service.", 80, hedges, &step_tokens, &gate);
    assert (gate.passed);               //  "maybe" only as a whole word
    const char *unrelated = "Restart the web server, clear the caches and redeploy the frontend "
                            "bundle from the last good build.";
    lh_distill_gate (unrelated, 80, hedges, &step_tokens, &gate);
    assert (!gate.passed && gate.long_enough && !gate.hedge [0] && !gate.shares_step);
    lh_distill_gate (unrelated, 80, hedges, NULL, &gate);
    assert (gate.passed && gate.shares_step);
    //  Characters, not bytes
    lh_distill_gate ("\xc3\xa9\xc3\xa9\xc3\xa9", 3, "", NULL, &gate);
    assert (gate.chars == 3 && gate.passed);
    lh_distill_tokens_reset (&step_tokens);
    lh_distill_tokens_reset (&a);
    assert (lh_distill_source_index ("outcomes") == 11 && lh_distill_source_index ("x") == -1);
    printf ("OK\n");
}
