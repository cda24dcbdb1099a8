/*  =========================================================================
    lh_relevance - how relevant a chunk of context is to the file in focus
    (matrixd's relevance op, SPEC 5.9)

    A focus is the file a reviewer or model works on: its path, the
    symbols it defines and imports, and optionally its text. Each chunk
    (a path and a text) gets an additive score:

        +1.0   path match: the chunk's path is the focus's path
        +0.6   the focus's file name is mentioned in the chunk's text
        +0.6   a symbol the focus defines is mentioned
        +0.4 x Jaccard of the two sets of non-stopword tokens
        +0.3   shared first-two-segment path prefix (both paths have at
               least three segments and their first two are equal)
        -0.5   mentions only imported symbols: some imported symbol is
               mentioned and no defined one is

    A chunk is kept when its score reaches the threshold (0.3 by default).
    docs/matrixd.md states the exact matching rules.

        const char *defined [] = { "lh_routes_match" };
        lh_relevance_t *focus = lh_relevance_new ("gateway/lh_routes.c", NULL,
                                                  defined, 1, NULL, 0);
        lh_relevance_signals_t signals;
        lh_relevance_score (focus, "docs/http.md", "lh_routes_match maps ...", &signals);
        //  signals.symbol_mentioned, signals.score == 0.6 + 0.4 x Jaccard
        lh_relevance_destroy (&focus);
    =========================================================================
*/

#ifndef LH_RELEVANCE_H_INCLUDED
#define LH_RELEVANCE_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_relevance_t lh_relevance_t;

//  What one chunk scored, signal by signal
typedef struct {
    bool path_match;                    //  same path as the focus
    bool filename_mentioned;            //  the focus's file name in the text
    bool symbol_mentioned;              //  a defined symbol in the text
    bool prefix_shared;                 //  same first two path segments
    bool imported_only;                 //  imported symbols, no defined one
    double jaccard;                     //  token overlap, 0..1
    double score;                       //  the sum
} lh_relevance_signals_t;

//  A focus: path (required), content (may be NULL: then its tokens are
//  those of the path and the defined symbols), the symbols it defines and
//  imports. The strings are copied.
lh_relevance_t *
    lh_relevance_new (const char *path, const char *content,
                      const char **defined, size_t defined_count,
                      const char **imported, size_t imported_count);

//  Destroy a focus; nulls the caller's pointer
void
    lh_relevance_destroy (lh_relevance_t **self_p);

//  Score one chunk (path may be NULL: no path signals)
void
    lh_relevance_score (lh_relevance_t *self, const char *path, const char *text,
                        lh_relevance_signals_t *signals);

//  Self test of this class
void
    lh_relevance_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
