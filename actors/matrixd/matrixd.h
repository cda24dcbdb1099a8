/*  =========================================================================
    matrixd - retrieval across several corpora, and what worked before
    (SPEC 5.9); docs/matrixd.md has the details

    Ops (bodies are msgpack; shown as JSON):

    search           {query_text | vector, corpora: [index], k?: 10,
                     per_corpus_k?: k, ef?, filter?, exclude_ids?: [id],
                     model?, use_playbook?: false, playbook_corpus?,
                     playbook_top_k?: 10, playbook_max_distance?: 0.5,
                     playbook_max_inject_distance?: 0.20}
                     -> {hits: [{id, corpus, distance, metadata, boosted?,
                     original_distance?, injected?, playbook_distance?}],
                     count}
                     query_text is embedded once (embedd.embed); every
                     corpus is searched at once (vectord.search, all in
                     flight together, with the playbook search when
                     use_playbook); hits merged by distance; exclude_ids
                     applied after the sort, before the cut to k.
                     404 corpus_not_found (naming it), 400 dim_mismatch
                     (naming the corpus).
    playbook_record  {query_text, answer_id, answer_corpus, score: 0..1,
                     tags?: [str], playbook_corpus?, model?}
                     -> {playbook_id, playbook_corpus}
    playbook_bulk    {entries: [entry as playbook_record], playbook_corpus?,
                     model?} -> {recorded, playbook_ids, playbook_corpus}
                     at most matrixd/bulk_max entries (413), all validated
                     before anything is written (400 naming entries[i].field)
    relevance        {focus: {path, content?, defined_symbols?,
                     imported_symbols?}, chunks: [{path?, text | content}
                     or string], threshold?: 0.3}
                     -> {kept: [scored], dropped: [scored], threshold}
    downgrade        {mode, model, forced_mode?} -> {mode, model, weak,
                     forced, downgraded, downgraded_from?}
    corpora          {} -> {corpora: [{name, dim, metric, count}], count}

    Playbook entries live in a vectord index (playbook_corpus, default
    matrixd/playbook_corpus = "playbook_memory", created on first record
    with the embedder's dim, cosine): vector = embed(query_text), metadata
    = the entry, id = hex SHA-256 of query_text 0x1f answer_id 0x1f
    answer_corpus (their UTF-8 bytes as given). Re-recording the same
    triple replaces it: the last score wins.

    With use_playbook, a hit whose (id, corpus) is the (answer_id,
    answer_corpus) of a playbook entry within playbook_max_distance of the
    query takes distance x (1 - 0.5 x score) from the nearest such entry;
    entries within playbook_max_inject_distance whose answer is not among
    the hits are injected. matrixd keeps no state of its own: any number of
    instances may run.
    =========================================================================
*/

#ifndef MATRIXD_H_INCLUDED
#define MATRIXD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The matrixd service, for lh_service_start and the registry
extern const lh_service_t lh_matrixd_service;

//  The playbook id of a (query_text, answer_id, answer_corpus) triple: hex
//  SHA-256 of the three byte strings joined by 0x1f, into id (65 bytes)
void
    lh_matrixd_playbook_id (const char *query_text, size_t query_size,
                            const char *answer_id, size_t answer_size,
                            const char *answer_corpus, size_t corpus_size,
                            char *id);

//  Self test of this class
void
    lh_matrixd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
