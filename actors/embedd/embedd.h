/*  =========================================================================
    embedd - embeddings with a per-text LRU cache (SPEC 5.6); docs/embedd.md
    has the details

    Ops (bodies are msgpack; shown as JSON):

    embed   {texts: [str, ...], model?} -> {model, dim, vectors: [[f32]]}
            vectors in the order of texts; each text is looked up in the
            cache (key: model + SHA-256 of the text) and only the misses go
            to the provider, in one batch. Empty text -> 400.
    stats   {} -> {hits, misses, hit_rate, size, capacity}

    Providers: hash (built in, default; feature hashing of word unigrams,
    bigrams and character trigrams, L2-normalised, embedd/dim components),
    ollama (POST /api/embed), openai (POST /v1/embeddings). The model picks
    the provider: "hash", "ollama/M", "openai/M", or a bare M for the
    configured embedd/provider. Provider failures are 502 (429 passes on
    with retry_after_ms from Retry-After), timeouts 504.
    =========================================================================
*/

#ifndef EMBEDD_H_INCLUDED
#define EMBEDD_H_INCLUDED

#include "lh_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

//  The embedd service, for lh_service_start and the registry
extern const lh_service_t lh_embedd_service;

//  Self test of this class
void
    lh_embedd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
