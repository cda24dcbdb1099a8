/*  =========================================================================
    lh_relevance - how relevant a chunk of context is to the file in focus;
    see lh_relevance.h

    Tokens are runs of ASCII letters, digits, '_' and bytes >= 0x80,
    lowercased (ASCII), at least two bytes long, not all digits, and not
    one of the stopwords below. A symbol is mentioned when it occurs with
    no identifier character ([A-Za-z0-9_]) right before or after it; the
    file name (the last segment of the focus's path) when it occurs with no
    identifier character, '.' or '-' right before it and no identifier
    character right after it. Both are case-sensitive. Paths are compared
    after dropping leading "./"; segments are the non-empty parts between
    '/'.
    =========================================================================
*/

#include "lh_relevance.h"

#define S_PATH_MATCH        1.0
#define S_FILENAME          0.6
#define S_SYMBOL            0.6
#define S_JACCARD           0.4
#define S_PREFIX            0.3
#define S_IMPORTED_ONLY     (-0.5)

struct _lh_relevance_t {
    char *path;                         //  focus path, "./" dropped
    const char *filename;               //  its last segment (in path)
    zlistx_t *defined;                  //  symbols defined (char *)
    zlistx_t *imported;                 //  symbols imported (char *)
    zhashx_t *tokens;                   //  focus token set
};

//  Common English words, which say nothing about a file
static const char *s_stopwords [] = {
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "but", "by", "can", "could", "did", "do", "does",
    "each", "for", "from", "had", "has", "have", "he", "her", "here", "his",
    "how", "if", "in", "into", "is", "it", "its", "just", "may", "more", "most",
    "must", "no", "not", "of", "on", "one", "only", "or", "other", "our", "out",
    "over", "she", "should", "so", "some", "such", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to",
    "too", "under", "up", "use", "used", "uses", "very", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "why", "will", "with",
    "would", "you", "your"
};


//  --------------------------------------------------------------------------
//  Is c part of an identifier?

static bool
s_ident (char c)
{
    return isalnum ((unsigned char) c) || c == '_';
}


//  --------------------------------------------------------------------------
//  Is this token a stopword? (sorted table, binary search)

static bool
s_stopword (const char *token)
{
    size_t low = 0, high = sizeof (s_stopwords) / sizeof (s_stopwords [0]);
    while (low < high) {
        size_t middle = (low + high) / 2;
        int order = strcmp (token, s_stopwords [middle]);
        if (order == 0)
            return true;
        if (order < 0)
            high = middle;
        else
            low = middle + 1;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Add the tokens of text to a set

static void
s_tokenize (const char *text, zhashx_t *set)
{
    const char *at = text;
    char token [256];
    while (*at) {
        while (*at && !(s_ident (*at) || (unsigned char) *at >= 0x80))
            at++;
        size_t length = 0;
        bool digits = true;
        while (*at && (s_ident (*at) || (unsigned char) *at >= 0x80)) {
            if (length < sizeof (token) - 1)
                token [length++] = (char) tolower ((unsigned char) *at);
            digits = digits && isdigit ((unsigned char) *at);
            at++;
        }
        token [length] = 0;
        if (length >= 2 && !digits && !s_stopword (token))
            zhashx_insert (set, token, (void *) 1);
    }
}


//  --------------------------------------------------------------------------
//  Does word occur in text, bounded as the header says? before_extra is
//  the set of characters (beyond identifier ones) refused right before it.

static bool
s_mentions (const char *text, const char *word, const char *before_extra)
{
    size_t size = strlen (word);
    if (size == 0)
        return false;
    for (const char *at = strstr (text, word); at; at = strstr (at + 1, word)) {
        char before = at == text? ' ': at [-1];
        char after = at [size];
        if (!s_ident (before) && !(before && strchr (before_extra, before))
        &&  !s_ident (after))
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Any symbol of the list mentioned?

static bool
s_mentions_any (const char *text, zlistx_t *symbols)
{
    for (const char *symbol = (const char *) zlistx_first (symbols); symbol;
         symbol = (const char *) zlistx_next (symbols))
        if (s_mentions (text, symbol, ""))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  A path without its leading "./" (borrowed, inside path)

static const char *
s_path_trim (const char *path)
{
    while (path [0] == '.' && path [1] == '/')
        path += 2;
    return path;
}


//  --------------------------------------------------------------------------
//  The first two segments of a path into prefix ("a/b"), when it has at
//  least three; returns false otherwise

static bool
s_prefix (const char *path, char *prefix, size_t size)
{
    size_t segments = 0, length = 0;
    prefix [0] = 0;
    for (const char *at = path; *at; ) {
        while (*at == '/')
            at++;
        if (!*at)
            break;
        const char *end = strchr (at, '/');
        size_t part = end? (size_t) (end - at): strlen (at);
        if (segments < 2) {
            if (length + part + 2 > size)
                return false;
            if (segments)
                prefix [length++] = '/';
            memcpy (prefix + length, at, part);
            length += part;
            prefix [length] = 0;
        }
        segments++;
        at += part;
    }
    return segments >= 3;
}


//  --------------------------------------------------------------------------
//  Create a focus

lh_relevance_t *
lh_relevance_new (const char *path, const char *content,
                  const char **defined, size_t defined_count,
                  const char **imported, size_t imported_count)
{
    assert (path);
    lh_relevance_t *self = (lh_relevance_t *) zmalloc (sizeof (lh_relevance_t));
    assert (self);
    self->path = strdup (s_path_trim (path));
    const char *slash = strrchr (self->path, '/');
    self->filename = slash? slash + 1: self->path;
    self->defined = zlistx_new ();
    self->imported = zlistx_new ();
    zlistx_set_duplicator (self->defined, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (self->defined, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (self->imported, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (self->imported, (zlistx_destructor_fn *) zstr_free);
    for (size_t index = 0; index < defined_count; index++)
        zlistx_add_end (self->defined, (void *) defined [index]);
    for (size_t index = 0; index < imported_count; index++)
        zlistx_add_end (self->imported, (void *) imported [index]);
    self->tokens = zhashx_new ();
    if (content)
        s_tokenize (content, self->tokens);
    else {
        s_tokenize (self->path, self->tokens);
        for (size_t index = 0; index < defined_count; index++)
            s_tokenize (defined [index], self->tokens);
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy a focus

void
lh_relevance_destroy (lh_relevance_t **self_p)
{
    assert (self_p);
    lh_relevance_t *self = *self_p;
    if (self) {
        free (self->path);
        zlistx_destroy (&self->defined);
        zlistx_destroy (&self->imported);
        zhashx_destroy (&self->tokens);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Score one chunk

void
lh_relevance_score (lh_relevance_t *self, const char *path, const char *text,
                    lh_relevance_signals_t *signals)
{
    assert (self && text && signals);
    memset (signals, 0, sizeof (*signals));
    if (path) {
        path = s_path_trim (path);
        signals->path_match = streq (path, self->path);
        char ours [512], theirs [512];
        signals->prefix_shared = s_prefix (self->path, ours, sizeof (ours))
                              && s_prefix (path, theirs, sizeof (theirs))
                              && streq (ours, theirs);
    }
    signals->filename_mentioned = s_mentions (text, self->filename, ".-");
    signals->symbol_mentioned = s_mentions_any (text, self->defined);
    signals->imported_only = !signals->symbol_mentioned
                          && s_mentions_any (text, self->imported);
    zhashx_t *tokens = zhashx_new ();
    s_tokenize (text, tokens);
    size_t shared = 0;
    for (void *item = zhashx_first (tokens); item; item = zhashx_next (tokens))
        if (zhashx_lookup (self->tokens, (const char *) zhashx_cursor (tokens)))
            shared++;
    size_t either = zhashx_size (tokens) + zhashx_size (self->tokens) - shared;
    signals->jaccard = either? (double) shared / (double) either: 0.0;
    zhashx_destroy (&tokens);
    signals->score = (signals->path_match? S_PATH_MATCH: 0)
                   + (signals->filename_mentioned? S_FILENAME: 0)
                   + (signals->symbol_mentioned? S_SYMBOL: 0)
                   + S_JACCARD * signals->jaccard
                   + (signals->prefix_shared? S_PREFIX: 0)
                   + (signals->imported_only? S_IMPORTED_ONLY: 0);
}


//  --------------------------------------------------------------------------
//  Self test: every signal alone and together, table-driven

void
lh_relevance_test (bool verbose)
{
    printf (" * lh_relevance: ");
    //  The stopword table must stay sorted for the binary search
    for (size_t index = 1; index < sizeof (s_stopwords) / sizeof (s_stopwords [0]); index++)
        assert (strcmp (s_stopwords [index - 1], s_stopwords [index]) < 0);
    assert (s_stopword ("the") && s_stopword ("a") && s_stopword ("your"));
    assert (!s_stopword ("route") && !s_stopword (""));

    const char *defined [] = { "lh_routes_match", "lh_routes_request" };
    const char *imported [] = { "json_loadb", "lh_pack_new" };
    lh_relevance_t *focus = lh_relevance_new ("./gateway/http/lh_routes.c", NULL,
                                              defined, 2, imported, 2);
    //  Focus tokens: gateway http lh_routes (from the path; "c" is too
    //  short) + lh_routes_match lh_routes_request: 5 tokens
    assert (zhashx_size (focus->tokens) == 5);
    struct {
        const char *path;               //  chunk path, or NULL
        const char *text;               //  chunk text
        bool path_match, filename, symbol, prefix, imported_only;
        double jaccard;                 //  expected, to 1e-9
    } cases [] = {
        //  Nothing in common
        { "docs/http.md", "Nothing to see", false, false, false, false, false, 0 },
        //  Same file: path match + prefix; text shares "gateway" (1 of 5)
        { "gateway/http/lh_routes.c", "the gateway", true, false, false, true, false, 1.0 / 5 },
        //  Same directory prefix, other file
        { "gateway/http/lh_gateway.c", "x", false, false, false, true, false, 0 },
        //  Only two segments: no prefix
        { "gateway/lh_routes.c", "x", false, false, false, false, false, 0 },
        //  File name mentioned, bounded
        { NULL, "see lh_routes.c: line 3", false, true, false, false, false, 1.0 / 7 },
        { NULL, "see gateway/lh_routes.c.", false, true, false, false, false, 2.0 / 6 },
        { NULL, "see my_lh_routes.c", false, false, false, false, false, 0 },
        { NULL, "see lh_routes.cpp", false, false, false, false, false, 1.0 / 7 },
        //  Symbol mentioned, bounded: whole identifiers only
        { NULL, "call lh_routes_match()", false, false, true, false, false, 1.0 / 6 },
        { NULL, "call lh_routes_matcher()", false, false, false, false, false, 0 },
        { NULL, "call LH_ROUTES_MATCH()", false, false, false, false, false, 1.0 / 6 },
        //  Imported only, and imported with defined
        { NULL, "json_loadb (text)", false, false, false, false, true, 0 },
        { NULL, "json_loadb then lh_routes_request", false, false, true, false, false, 1.0 / 6 },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        lh_relevance_signals_t signals;
        lh_relevance_score (focus, cases [index].path, cases [index].text, &signals);
        double expected = (cases [index].path_match? 1.0: 0) + (cases [index].filename? 0.6: 0)
                        + (cases [index].symbol? 0.6: 0) + (cases [index].prefix? 0.3: 0)
                        + (cases [index].imported_only? -0.5: 0) + 0.4 * cases [index].jaccard;
        if (verbose)
            printf ("\n    %s | %s -> %.4f (jaccard %.4f)", cases [index].path? cases [index].path: "-",
                    cases [index].text, signals.score, signals.jaccard);
        if (signals.path_match != cases [index].path_match
        ||  signals.filename_mentioned != cases [index].filename
        ||  signals.symbol_mentioned != cases [index].symbol
        ||  signals.prefix_shared != cases [index].prefix
        ||  signals.imported_only != cases [index].imported_only
        ||  fabs (signals.jaccard - cases [index].jaccard) > 1e-9
        ||  fabs (signals.score - expected) > 1e-9) {
            fprintf (stderr, "relevance case %zu (%s): got match %d file %d sym %d prefix %d "
                     "imp %d jaccard %f score %f\n", index, cases [index].text,
                     signals.path_match, signals.filename_mentioned, signals.symbol_mentioned,
                     signals.prefix_shared, signals.imported_only, signals.jaccard, signals.score);
            assert (false);
        }
    }
    lh_relevance_destroy (&focus);
    assert (focus == NULL);

    //  Content given: its tokens, stopwords and numbers left out
    focus = lh_relevance_new ("a.c", "The parser reads 2024 tokens", NULL, 0, NULL, 0);
    assert (zhashx_size (focus->tokens) == 3);     //  parser reads tokens
    lh_relevance_signals_t signals;
    lh_relevance_score (focus, "a.c", "Tokens the PARSER reads", &signals);
    assert (signals.path_match && !signals.prefix_shared);
    assert (fabs (signals.jaccard - 1.0) < 1e-9);
    assert (fabs (signals.score - 1.4) < 1e-9);
    lh_relevance_score (focus, "", "", &signals);
    assert (signals.score == 0 && signals.jaccard == 0);
    lh_relevance_destroy (&focus);
    printf ("OK\n");
}
