/*  =========================================================================
    chatd - route a chat to any LLM provider (SPEC 5.7, docs/chatd.md)

    Ops (bodies are msgpack; shown here as JSON):

    chat {model, messages: [{role, content}], max_tokens?, temperature?,
          format?: "json" | SCHEMA, json_schema?: SCHEMA}
        -> 200 {model, provider, content, finish_reason, usage:
                {prompt_tokens, completion_tokens, total_tokens}}
           400 bad input (field named), 404 kind "no_such_provider" when
           the model routes to a provider without a key or URL, 502 kind
           "upstream" with the provider's message (keys redacted) when the
           provider fails after the retries, 504 when the caller's
           deadline passes first.
    providers (no body)
        -> 200 {providers: [{name, api, base_url}], unconfigured: [names],
                tiers: {local_fast: MODEL, ...}, weak_models: [MODEL, ...]}

    Routing by model name, the prefix stripped before sending:
        ollama/M, or bare M        local Ollama   POST URL/api/chat
        ollama_cloud/M, M:cloud    Ollama Cloud   POST URL/api/chat, Bearer
        openrouter/VENDOR/M        OpenRouter     POST URL/chat/completions
        opencode/M                 OpenCode       POST URL/chat/completions
        kimi/M                     Kimi           POST URL/chat/completions
    A model equal to a tier name (local_fast, local_judge, cloud_judge,
    cloud_review, frontier_review) is first replaced by the tier's model
    from config models/NAME.
    =========================================================================
*/

#ifndef CHATD_H_INCLUDED
#define CHATD_H_INCLUDED

#include "lh_actor.h"
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Providers, in routing-table order
typedef enum {
    LH_PROVIDER_OLLAMA = 0,
    LH_PROVIDER_OLLAMA_CLOUD,
    LH_PROVIDER_OPENROUTER,
    LH_PROVIDER_OPENCODE,
    LH_PROVIDER_KIMI,
    LH_PROVIDER_COUNT
} lh_provider_t;

//  The chatd service, for lh_service_start and the registry
extern const lh_service_t lh_chatd_service;

//  Route a model name: sets *provider and writes the model name to send
//  (prefix or :cloud suffix stripped) into model_out (capacity bytes).
//  Returns 0, or -1 if the name is empty or its stripped part is empty.
int
    lh_chatd_route (const char *model, lh_provider_t *provider,
                    char *model_out, size_t capacity);

//  The model a request means when it names a provider beside the model,
//  as the original system's clients do ({"model": "M", "provider":
//  "ollama_cloud"}): PROVIDER/M for a bare M; the model as it is when its
//  prefix (or :cloud suffix) already routes to that provider; the model as
//  it is when provider is NULL or empty. Returns a new string (caller
//  frees), or NULL with a sentence in *error_p (caller frees): an unknown
//  provider, or a model whose prefix routes elsewhere.
char *
    lh_chatd_qualify (const char *model, const char *provider, char **error_p);

//  Name of a provider ("ollama_cloud")
const char *
    lh_chatd_provider_name (lh_provider_t provider);

//  Parse a provider's 200 response (Ollama or OpenAI-compatible, whole or
//  streamed as NDJSON / server-sent events) into content, finish_reason
//  and usage. Returns a new object {content, finish_reason, usage}, or
//  NULL with *error_p (static) saying why.
json_t *
    lh_chatd_parse_response (bool openai, const char *data, size_t size,
                             const char **error_p);

//  Self test of this class
void
    lh_chatd_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
