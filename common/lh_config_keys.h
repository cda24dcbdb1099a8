/*  =========================================================================
    lh_config_keys - every configuration key, declared once

    LH_KEY (path, type, default, range, comment)
        path     "section/key" as in the ZPL file (sections may nest)
        type     STR, INT (decimal, may be negative), BOOL (true/false)
        default  the value used when the file does not set the key
        range    what values the key admits, checked when the file is
                 loaded (a value outside it refuses the start, naming the
                 file, line, key, value and range): "" any value of the
                 type; "MIN..MAX", "MIN.." or "..MAX" for an INT; "a|b|c"
                 the only values allowed (INT or STR)
        comment  one line, printed above the key in conf/lakehouse.cfg

    LH_RETIRED (path, replaced_by), at the end, names a key that is no
    longer read; a file or --set that sets it is refused with a message
    naming replaced_by.

    Each service adds its own keys here, grouped by section.
    =========================================================================
*/

//  The bus: where the broker listens and how peers reach it
LH_KEY ("bus/endpoint",        STR,  "tcp://127.0.0.1:5570", "", "Broker endpoint (ROUTER). Peers in other processes connect here.")
LH_KEY ("bus/inproc",          STR,  "inproc://lh-bus", "",      "Endpoint for actors inside the broker's own process.")
LH_KEY ("bus/tap",             STR,  "tcp://127.0.0.1:5571", "", "Tap endpoint (PUB): a copy of every routed message. Empty: no tap.")
LH_KEY ("bus/plain",           BOOL, "true", "",                 "Allow tcp without CURVE (only honoured on loopback endpoints).")

//  The broker
LH_KEY ("broker/name",         STR,  "lakehouse", "",            "Broker name, reported by broker.ping and in tap recordings.")
LH_KEY ("broker/hb_ivl",       INT,  "1000", "10..3600000",                 "Heartbeat interval dictated to every peer, ms.")
LH_KEY ("broker/hb_live",      INT,  "3", "1..1000",                    "Heartbeat intervals of silence before a peer is dead.")
LH_KEY ("broker/max_msg",      INT,  "16777216", "1024..4294967296",             "Largest message accepted, bytes (header + body).")
LH_KEY ("broker/queue_max",    INT,  "1000", "0..100000000",                 "Requests queued per service before 429.")
LH_KEY ("broker/queue_bytes",  INT,  "67108864", "0..1099511627776",             "Bytes queued per service before 429.")
LH_KEY ("broker/retry_after_ms", INT, "100", "1..3600000",                 "retry_after_ms advertised with 429 and 503.")
LH_KEY ("broker/sub_queue",    INT,  "1000", "1..10000000",                 "Events held for a slow subscriber before the oldest is dropped.")
LH_KEY ("broker/tap_hwm",      INT,  "1000", "0..10000000",                 "Tap send high-water mark; past it tap copies are dropped and counted.")
LH_KEY ("broker/max_attempts", INT,  "3", "1..100",                    "Most deliveries of an idempotent request whose worker died.")
LH_KEY ("broker/restart_grace", INT, "-1", "-1..3600000",                   "After start, ms during which a request for a not-yet-offered service waits for its workers to re-register instead of 404; -1 = hb_ivl x hb_live, 0 = off.")

//  Data
LH_KEY ("data/dir",            STR,  "./var", "",                "Data directory (storage, logs, certificates).")

//  Logging
LH_KEY ("log/level",           STR,  "info", "debug|info|warn|error",                 "Lowest level logged: debug, info, warn, error.")

//  Actors: which ones `lakehouse up` runs, and how many workers each
LH_KEY ("actors/run",          STR,  "*", "",                    "Actors `lakehouse up` starts: comma-separated names, or * for all.")
LH_KEY ("actors/echo/workers", INT,  "2", "1..256",                    "Worker threads of the echo service.")
LH_KEY ("actors/echo/credit",   INT,  "8", "1..1000",                   "Requests one echo worker holds at once: it serves one while the rest wait in its socket, so back-to-back requests need no broker round trip each. 1 = one at a time (a busy worker takes no more; what the queue-limit tests use).")
LH_KEY ("actors/echo/tag",     STR,  "", "",                     "Extra field 'tag' added to echo replies when set (replay tests).")

//  The HTTP gateway (gateway/, docs/http.md)
LH_KEY ("gateway/listen",       STR,  "127.0.0.1:3110", "",      "HTTP listen address: HOST:PORT, [V6]:PORT, http://HOST:PORT or http://[V6]:PORT; port 0 picks a free one. Non-loopback needs a token.")
LH_KEY ("gateway/threads",      INT,  "4", "1..256",                   "HTTP worker threads (libmicrohttpd epoll thread pool); each holds one bus client.")
LH_KEY ("gateway/conn_max",     INT,  "1024", "1..1000000",                "Most open HTTP connections; past it new connections are refused.")
LH_KEY ("gateway/conn_per_ip",  INT,  "256", "0..1000000",                 "Most open HTTP connections from one client address; 0 = no limit.")
LH_KEY ("gateway/idle_timeout_s", INT, "30", "1..86400",                 "Close a connection idle (no bytes either way) this long, seconds.")
LH_KEY ("gateway/read_timeout_s", INT, "30", "1..86400",                 "Close a connection whose request (headers and body) has not fully arrived this long after it started, seconds.")
LH_KEY ("gateway/header_max",   INT,  "32768", "4096..16777216",               "Memory per connection for the request line and headers, bytes; past it 431.")
LH_KEY ("gateway/body_max",     INT,  "1048576", "0..1099511627776",             "Largest request body, bytes, for routes without their own limit; past it 413.")
LH_KEY ("gateway/json_depth",   INT,  "64", "1..2048",                  "Deepest JSON nesting accepted in a request body; past it 400.")
LH_KEY ("gateway/timeout_ms",   INT,  "5000", "1..4294967295",                "Bus deadline of a request without X-Lakehouse-Timeout-Ms, ms.")
LH_KEY ("gateway/timeout_max_ms", INT, "60000", "1..4294967295",              "Largest X-Lakehouse-Timeout-Ms honoured; larger values are capped to it.")
LH_KEY ("gateway/token_file",   STR,  "", "",                    "File of bearer tokens, one per line, first = primary; must be mode 0600. Or env LAKEHOUSE_TOKEN / LAKEHOUSE_TOKENS.")
LH_KEY ("gateway/token_check_ms", INT, "1000", "10..86400000",               "How often the token file's mtime is checked for a reload, ms (SIGHUP reloads at once).")
LH_KEY ("gateway/allow",        STR,  "", "",                    "Client CIDR allow-list, comma-separated (10.0.0.0/8,::1/128); empty = any address. Others get 403.")
LH_KEY ("gateway/health_ms",    INT,  "1000", "10..86400000",                "How often GET /health's view of the broker and services is refreshed, ms.")

//  storaged: blobs (SPEC 5.1, docs/storaged.md)
LH_KEY ("actors/storaged/workers", INT, "4", "1..256",                 "Worker threads of the storaged service.")
LH_KEY ("storaged/backend",     STR,  "fs", "fs|s3",                  "Storage backend: fs (files under storaged/dir) or s3.")
LH_KEY ("storaged/dir",         STR,  "", "",                    "fs backend directory; empty = DATA_DIR/storage.")
LH_KEY ("storaged/cap_default", INT,  "268435456", "0..1099511627776",           "Largest object under a key no storaged/caps prefix matches, bytes (413 past it).")
LH_KEY ("storaged/caps",        STR,  "_vectors/=4294967296", "", "Per-prefix caps, comma-separated PREFIX=BYTES; the longest matching prefix wins.")
LH_KEY ("storaged/put_slots",   INT,  "4", "1..100000",                   "Concurrent PUTs (puts in progress + open multipart uploads) before 503.")
LH_KEY ("storaged/retry_after_ms", INT, "250", "1..3600000",               "retry_after_ms advertised with storaged's 503 (no free PUT slot).")
LH_KEY ("storaged/part_max",    INT,  "8388608", "1..1073741824",             "Largest put body or upload part, bytes (413 past it); keep it under broker/max_msg.")
LH_KEY ("storaged/get_max",     INT,  "8388608", "1..1073741824",             "Most bytes one get answers; larger objects are read in ranges.")
LH_KEY ("storaged/upload_ttl_ms", INT, "3600000", "1..604800000",            "An upload untouched this long is abandoned: its parts are removed and its PUT slot freed.")
LH_KEY ("storaged/s3_endpoint", STR,  "https://s3.amazonaws.com", "", "s3 backend: endpoint URL (http://127.0.0.1:9000 for a local MinIO, Ceph, s3rver).")
LH_KEY ("storaged/s3_region",   STR,  "us-east-1", "",           "s3 backend: region used in the SigV4 signature.")
LH_KEY ("storaged/s3_bucket",   STR,  "", "",                    "s3 backend: bucket name (required with storaged/backend = s3).")
LH_KEY ("storaged/s3_style",    STR,  "path", "path|virtual",                "s3 backend addressing: path (ENDPOINT/BUCKET/KEY) or virtual (BUCKET.HOST/KEY).")
LH_KEY ("storaged/s3_credentials_file", STR, "", "",             "s3 backend: file (mode 0600) with access_key_id= and secret_access_key= lines; empty = env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.")
LH_KEY ("storaged/s3_timeout_ms", INT, "30000", "1..4294967295",              "s3 backend: timeout of one HTTP request to the store, ms.")

//  catalogd: dataset manifests (SPEC 5.2, docs/catalogd.md)
LH_KEY ("actors/catalogd/workers", INT, "1", "1..256",                 "Worker threads of the catalogd service.")
LH_KEY ("catalogd/prefix",      STR,  "_catalog/", "",           "storaged key prefix under which manifests are persisted.")
LH_KEY ("catalogd/timeout_ms",  INT,  "5000", "1..4294967295",                "Deadline of each call catalogd makes to storaged, ms.")

//  chatd: LLM routing (SPEC 5.7, docs/chatd.md). Keys never live here: env
//  vars OLLAMA_API_KEY, OPENROUTER_API_KEY, OPENCODE_API_KEY, KIMI_API_KEY or the 0600 chatd/env_file
LH_KEY ("actors/chatd/workers", INT,  "4", "1..256",                   "Worker threads of the chatd service (each holds one provider call at a time).")
LH_KEY ("chatd/ollama_url",     STR,  "http://127.0.0.1:11434", "", "Local Ollama base URL (POST BASE/api/chat); empty = not registered.")
LH_KEY ("chatd/ollama_cloud_url", STR, "https://ollama.com", "", "Ollama Cloud base URL (POST BASE/api/chat, Bearer OLLAMA_API_KEY).")
LH_KEY ("chatd/openrouter_url", STR,  "https://openrouter.ai/api/v1", "", "OpenRouter base URL (POST BASE/chat/completions, Bearer OPENROUTER_API_KEY).")
LH_KEY ("chatd/opencode_url",   STR,  "https://opencode.ai/zen/v1", "", "OpenCode base URL (POST BASE/chat/completions, Bearer OPENCODE_API_KEY).")
LH_KEY ("chatd/kimi_url",       STR,  "https://api.moonshot.ai/v1", "", "Kimi base URL (POST BASE/chat/completions, Bearer KIMI_API_KEY).")
LH_KEY ("chatd/env_file",       STR,  "", "",                    "File of NAME=value provider keys (mode 0600 required); env vars win over it. Empty = env only.")
LH_KEY ("chatd/timeout_ms",     INT,  "120000", "1..4294967295",              "Timeout of one provider HTTP request, ms (also capped by the caller's deadline).")
LH_KEY ("chatd/connect_timeout_ms", INT, "5000", "1..4294967295",             "Timeout to connect to a provider, ms.")
LH_KEY ("chatd/retries",        INT,  "2", "0..10",                   "Retries after a 429, 5xx or transport error (so at most retries + 1 attempts).")
LH_KEY ("chatd/backoff_ms",     INT,  "250", "0..3600000",                 "First retry delay, ms, doubled each retry; a Retry-After header replaces it.")
LH_KEY ("chatd/retry_after_max_ms", INT, "30000", "0..3600000",            "Longest Retry-After honoured, ms; a longer one fails the call with 502 at once.")
LH_KEY ("chatd/num_ctx",        INT,  "8192", "1..10000000",                "Ollama context window (options.num_ctx), always sent to Ollama.")
LH_KEY ("chatd/think",          BOOL, "false", "",               "Ollama 'think' flag sent with every Ollama request.")
LH_KEY ("chatd/response_max",   INT,  "8388608", "1024..1073741824",             "Largest provider response accepted, bytes; past it 502.")
LH_KEY ("models/local_fast",    STR,  "qwen2.5:7b", "",          "Model tier: fast local model. A chat whose model is a tier name uses the tier's model.")
LH_KEY ("models/local_judge",   STR,  "qwen2.5:14b", "",         "Model tier: local judge.")
LH_KEY ("models/cloud_judge",   STR,  "ollama_cloud/gpt-oss:120b", "", "Model tier: cloud judge.")
LH_KEY ("models/cloud_review",  STR,  "openrouter/anthropic/claude-sonnet-4", "", "Model tier: cloud reviewer.")
LH_KEY ("models/frontier_review", STR, "openrouter/openai/gpt-5", "", "Model tier: frontier reviewer.")
LH_KEY ("models/weak_models",   STR,  "qwen2.5:0.5b,llama3.2:1b", "", "Models known to be weak (comma-separated), reported by chatd.providers.")

//  validatord: is the model's output real? (SPEC 5.8, docs/validatord.md, docs/session_log.md)
LH_KEY ("actors/validatord/workers", INT, "4", "1..256",               "Worker threads of the validatord service (iterate holds one for the whole loop).")
LH_KEY ("validatord/roster",    STR,  "", "",                    "Worker roster, a JSONL file (reloaded when it changes); empty = an empty roster.")
LH_KEY ("validatord/session_log", STR, "sessions/iterate.jsonl", "", "Session log (JSONL, one row per iterate); relative to data/dir; empty = off.")
LH_KEY ("validatord/chat_timeout_ms", INT, "180000", "1..4294967295",         "Deadline of each chatd.chat call made by iterate, ms (capped by the caller's deadline).")
LH_KEY ("validatord/max_iterations_cap", INT, "10", "1..1000",          "Largest max_iterations accepted by iterate; above it 400.")
LH_KEY ("validatord/prompt_max_tokens", INT, "8000", "100..10000000",         "Bound on an iterate retry prompt, tokens (about 4 characters each); the failed attempt is cut to fit.")

//  storaged's s3 backend, continued (docs/storaged.md "s3 backend")
LH_KEY ("storaged/s3_connect_timeout_ms", INT, "5000", "1..4294967295",      "s3 backend: timeout to connect to the store, ms.")
LH_KEY ("storaged/s3_part_min", INT, "5242880", "1..1073741824",             "s3 backend: upload parts are buffered to this many bytes before one S3 UploadPart (S3 wants >= 5 MiB but the last).")
LH_KEY ("storaged/s3_list_heads", INT, "200", "0..1000",               "s3 backend: list HEADs each key (16 at a time) for its SHA-256 ETag, at most this many keys per page; 0 = no HEADs, S3's own ETags.")

//  ingestd: CSV to tables (SPEC 5.3, docs/ingestd.md)
LH_KEY ("actors/ingestd/workers", INT, "2", "1..256",                  "Worker threads of the ingestd service (each runs one ingest at a time).")
LH_KEY ("ingest/max_bytes",     INT,  "4294967296", "1..1099511627776",        "Largest CSV ingested, bytes: a POST /v1/ingest body (gateway), an ingestd source, and storaged's cap for uploads/ingest/ (where the gateway and `lakehouse ingest` put sources); 413 past it, naming this key. Memory stays bounded whatever the size.")
LH_KEY ("ingestd/record_max",   INT,  "16777216", "1024..1073741824",            "Longest CSV record (one row, all its fields), bytes; a longer one is refused with 400.")
LH_KEY ("ingestd/read_chunk",   INT,  "4194304", "1024..67108864",             "Bytes asked of storaged per get while reading the source (storaged may answer fewer).")
LH_KEY ("ingestd/timeout_ms",   INT,  "30000", "1..4294967295",               "Deadline of each call ingestd makes to storaged or catalogd, ms.")
LH_KEY ("ingestd/tmp_dir",      STR,  "", "",                    "Where table files are built before upload; empty = DATA_DIR/ingestd.")
LH_KEY ("ingestd/page_size",    INT,  "8192", "512|1024|2048|4096|8192|16384|32768|65536",                "SQLite page size of the table files, bytes (512..65536, a power of two).")
LH_KEY ("ingestd/cache_kib",    INT,  "8192", "64..4194304",                "SQLite page cache while building a table file, KiB (bounds ingestd's memory).")
LH_KEY ("ingestd/index_max",    INT,  "1", "0..16",                   "Covering indexes per table over low-cardinality text columns + numeric ones: the first leads with all of them, each further one with the next (0 = none).")
LH_KEY ("ingestd/index_distinct_max", INT, "64", "1..100000",             "A text column is indexed only if it has at most this many distinct values.")

//  queryd: SQL over the catalogued datasets (SPEC 5.4, docs/queryd.md)
LH_KEY ("actors/queryd/workers", INT, "2", "1..256",                   "Worker threads of the queryd service (each with its own SQLite connection).")
LH_KEY ("queryd/timeout_ms",    INT,  "10000", "1..4294967295",               "Statement timeout, ms (also capped by the caller's deadline); past it 504.")
LH_KEY ("queryd/row_limit",     INT,  "1000", "0..100000000",                "Rows returned when the request gives no limit; more rows set truncated.")
LH_KEY ("queryd/row_max",       INT,  "100000", "0..100000000",              "Largest limit a request may ask for; larger ones are capped to it.")
LH_KEY ("queryd/reply_max",     INT,  "8388608", "1024..1073741824",             "Largest reply, bytes; rows past it are cut and truncated is set. Keep it under broker/max_msg.")
LH_KEY ("queryd/cache_dir",     STR,  "", "",                    "Local cache of dataset files, named by content hash; empty = DATA_DIR/queryd.")
LH_KEY ("queryd/attach_max",    INT,  "10", "1..10",                  "Datasets attached at once per connection (Debian's SQLite allows 10); least recently used are detached.")
LH_KEY ("queryd/refresh_ms",    INT,  "30000", "100..86400000",               "Full catalog refresh period, ms (catalog.changed events apply in between).")
LH_KEY ("queryd/storage_timeout_ms", INT, "30000", "1..4294967295",           "Deadline of each call queryd makes to catalogd or storaged, ms.")
LH_KEY ("queryd/mmap_bytes",    INT,  "268435456", "0..1099511627776",           "SQLite mmap_size of each attached dataset file, bytes (0 = no mmap).")

//  Security: CURVE certificates and who may do what (SPEC 3, docs/operations.md "Security")
LH_KEY ("bus/curve",           BOOL, "true", "",                 "CURVE on every tcp/ipc bus link (the broker's endpoints and the links to them). false = plain tcp, loopback only, and only with bus/plain = true.")
LH_KEY ("bus/certs",           STR,  "", "",                     "Certificate directory; empty = DATA_DIR/certs (`lakehouse up` and `broker` create the local set there on first run).")
LH_KEY ("bus/cert",            STR,  "", "",                     "This process's own certificate (NAME.cert, with NAME.cert_secret beside it); empty = CERTS/node.cert (node), CERTS/gateway.cert (gateway), CERTS/admin.cert (buscall).")
LH_KEY ("bus/server_key",      STR,  "", "",                     "The broker's public key: 40-character Z85, or the path of its public certificate; empty = CERTS/broker.cert.")
LH_KEY ("broker/cert",         STR,  "", "",                     "The broker's server certificate (with its _secret file); empty = CERTS/broker.cert.")
LH_KEY ("broker/allow",        STR,  "", "",                     "Directory of the public certificates the broker accepts (one file per key, never rewritten in place); empty = CERTS/allow.")
LH_KEY ("broker/reload_ms",    INT,  "1000", "10..3600000",                 "How often the allow directory is checked for added or removed certificates, ms (SIGHUP: at once).")
LH_KEY ("acl/actor/serve",     STR,  "*", "",                    "Services a role=actor certificate may offer (READY): comma-separated svc, or *. No other role may serve.")
LH_KEY ("acl/actor/call",      STR,  "*", "",                    "What role actor may call: comma-separated svc, svc.op, svc.*, or *.")
LH_KEY ("acl/gateway/call",    STR,  "*", "",                    "What role gateway may call (same patterns).")
LH_KEY ("acl/client/call",     STR,  "*", "",                    "What role client may call (same patterns).")
LH_KEY ("acl/admin/call",      STR,  "*", "",                    "What role admin may call; broker.bind, broker.unbind and broker.reload need role admin as well.")
LH_KEY ("acl/tap/call",        STR,  "", "",                     "What role tap may call (it reads the tap; empty = nothing).")

//  The HTTP gateway, continued: streaming and per-route deadlines (docs/http.md)
LH_KEY ("gateway/part_size",    INT,  "4194304", "4096..268435456",             "Bytes per storaged call when an HTTP body streams in (upload parts) or out (get ranges); keep it <= storaged/part_max.")
LH_KEY ("gateway/storage_max",  INT,  "4294967296", "0..1099511627776",          "Largest PUT /v1/storage body, bytes; past it 413 (storaged's per-prefix caps apply too).")
LH_KEY ("gateway/storage_timeout_ms", INT, "30000", "1..4294967295",          "Bus deadline of each storaged call made while streaming /v1/storage and /v1/ingest bodies, ms.")
LH_KEY ("gateway/ingest_timeout_ms", INT, "600000", "1..4294967295",          "Bus deadline of the ingestd.ingest call behind POST /v1/ingest, ms.")
LH_KEY ("gateway/sql_timeout_ms", INT, "30000", "1..4294967295",              "Default bus deadline of POST /v1/sql, ms.")
LH_KEY ("gateway/chat_timeout_ms", INT, "180000", "1..4294967295",            "Default bus deadline of POST /v1/chat, ms (LLM calls are slow).")
LH_KEY ("gateway/embed_timeout_ms", INT, "60000", "1..4294967295",            "Default bus deadline of POST /v1/embed, ms (a provider batch can be slow).")
LH_KEY ("gateway/vectors_timeout_ms", INT, "120000", "1..4294967295",         "Default bus deadline of the /v1/vectors routes, ms (a 10,000-item add at d = 768 takes tens of seconds).")
LH_KEY ("gateway/vectors_max", INT,  "67108864", "0..1099511627776",             "Largest body of the /v1/vectors routes, bytes (vectors travel as JSON numbers).")
LH_KEY ("gateway/iterate_timeout_ms", INT, "600000", "1..4294967295",         "Default bus deadline of POST /v1/iterate, ms (several LLM calls).")

//  vectord: durable HNSW vector indexes (SPEC 5.5, docs/vectord.md)
LH_KEY ("actors/vectord/workers", INT, "2", "1..256",                  "Worker threads of the vectord service (searches run in parallel; writes to one index are serialised).")
LH_KEY ("vectord/dir",          STR,  "", "",                    "Where each index keeps its LMDB log (one directory per index); empty = DATA_DIR/vectord.")
LH_KEY ("vectord/map_bytes",    INT,  "68719476736", "1048576..",         "LMDB map size per index, bytes (address space, not disk; bounds one index's log).")
LH_KEY ("vectord/snapshot_ms",  INT,  "30000", "0..86400000",               "Graph snapshots to storaged at most this often per changed index, ms (0 = never).")
LH_KEY ("vectord/snapshot_prefix", STR, "_vectors/", "",         "storaged key prefix of the graph snapshots (PREFIX/NAME/manifest, PREFIX/NAME/graph-SEQ).")
LH_KEY ("vectord/storage_timeout_ms", INT, "30000", "1..4294967295",          "Deadline of each call vectord makes to storaged, ms.")
LH_KEY ("vectord/m",            INT,  "16", "2..100",                  "Default HNSW M of a new index (2..100).")
LH_KEY ("vectord/ef_construction", INT, "200", "1..100000",               "Default HNSW ef_construction of a new index.")
LH_KEY ("vectord/ef",           INT,  "64", "1..100000",                  "Default search ef of a new index (stored with the index).")
LH_KEY ("vectord/dim_max",      INT,  "4096", "1..65536",                "Largest dimension of an index; above it 400.")
LH_KEY ("vectord/k_max",        INT,  "1000", "1..100000",                "Largest k (and ef) of a search; above it 400.")
LH_KEY ("vectord/batch_max",    INT,  "10000", "1..10000000",               "Most items in one add; more is refused with 413.")
LH_KEY ("vectord/compact_pct",  INT,  "20", "1..1000",                  "Rebuild an index's graph when its tombstones pass this percent of its live vectors.")

//  embedd: embeddings with a per-text LRU cache (SPEC 5.6, docs/embedd.md)
LH_KEY ("actors/embedd/workers", INT, "2", "1..256",                   "Worker threads of the embedd service.")
LH_KEY ("embedd/provider",      STR,  "hash", "hash|ollama|openai",                "Default provider: hash (built in), ollama or openai.")
LH_KEY ("embedd/model",         STR,  "", "",                    "Default model; empty = the provider's (hash, nomic-embed-text, text-embedding-3-small).")
LH_KEY ("embedd/dim",           INT,  "768", "1..65536",                 "Dimension of the hash embedder's vectors.")
LH_KEY ("embedd/ollama_url",    STR,  "http://127.0.0.1:11434", "", "Ollama base URL (POST /api/embed).")
LH_KEY ("embedd/openai_url",    STR,  "https://api.openai.com", "", "OpenAI-compatible base URL (POST /v1/embeddings).")
LH_KEY ("embedd/openai_key_env", STR, "OPENAI_API_KEY", "",      "Environment variable holding the OpenAI API key (never put keys in this file).")
LH_KEY ("embedd/timeout_ms",    INT,  "30000", "1..4294967295",               "Whole-request timeout of a provider call, ms (also capped by the caller's deadline).")
LH_KEY ("embedd/connect_timeout_ms", INT, "5000", "1..4294967295",            "Connect timeout of a provider call, ms.")
LH_KEY ("embedd/cache_entries", INT,  "10000", "0..100000000",               "Vectors kept in the LRU cache (0 = no cache).")
LH_KEY ("embedd/texts_max",     INT,  "256", "1..1000000",                 "Most texts in one embed request; more is refused with 413.")
LH_KEY ("embedd/text_max",      INT,  "65536", "1..1073741824",               "Longest text, bytes; longer is refused with 413.")

//  validatord: the roster held as a catalogued dataset, read through queryd (docs/validatord.md)
LH_KEY ("validatord/roster_dataset", STR, "", "",                "Worker roster as a catalogued dataset (read with queryd.sql, reloaded on catalog.changed); empty = off. Not with validatord/roster.")
LH_KEY ("validatord/roster_columns", STR, "", "",                "Dataset roster column mapping, field=column,... (fields candidate_id name city state role status blacklisted_clients); empty = by name.")
LH_KEY ("validatord/roster_page_rows", INT, "100000", "1..10000000",        "Rows asked for per queryd.sql page when loading the dataset roster (queryd caps it to queryd/row_max and queryd/reply_max).")
LH_KEY ("validatord/roster_poll_ms", INT, "30000", "100..86400000",           "Check catalogd.get for a new version of the dataset roster this often, ms, besides catalog.changed (a failed load is retried after min(5000, this)).")
LH_KEY ("validatord/roster_timeout_ms", INT, "30000", "1..4294967295",        "Deadline of each catalogd / queryd call of the dataset roster loader, ms; validatord waits up to this long at start for the first load.")

//  Keys no longer read: a file or --set that names one is refused at load
//  with a message naming the key that replaced it (docs/configuration.md)
#ifdef LH_RETIRED
LH_RETIRED ("gateway/ingest_max",       "ingest/max_bytes")
LH_RETIRED ("ingestd/max_ingest_bytes", "ingest/max_bytes")
#endif

//  pathwayd: versioned memory traces in LMDB (SPEC 5.9, docs/pathwayd.md)
LH_KEY ("actors/pathwayd/workers", INT, "8", "1..256",                 "Worker threads of the pathwayd service; the writes of all of them in flight share one LMDB commit (group commit), so more workers carry more writes per fsync.")
LH_KEY ("pathwayd/dir",         STR,  "", "",                    "LMDB environment of the traces; empty = DATA_DIR/pathwayd.")
LH_KEY ("pathwayd/map_bytes",   INT,  "68719476736", "1048576..",         "LMDB map size, bytes (address space, not disk; bounds the store; past it writes fail with 500 storage_full).")
LH_KEY ("pathwayd/content_max", INT,  "1048576", "1..16777216",             "Largest content of one trace, bytes as msgpack; past it 413. Keep it under broker/max_msg.")
LH_KEY ("pathwayd/tags_max",    INT,  "64", "1..255",                  "Most tags on one trace (and in one search), each 1..256 bytes; more is 400.")
LH_KEY ("pathwayd/search_max",  INT,  "1000", "1..100000",               "Largest search limit (above it 400); a search without one gets 100, or this if smaller.")
LH_KEY ("pathwayd/history_max", INT,  "1000", "1..1000000",              "Most traces one history reply walks (its default and largest limit); a longer chain is cut with truncated and next.")
LH_KEY ("pathwayd/reply_max",   INT,  "8388608", "65536..1073741824",       "A search or history reply stops adding traces past this many bytes (truncated is set; at least one trace). Keep it under broker/max_msg.")
LH_KEY ("pathwayd/batch_max",   INT,  "256", "1..100000",               "Most writes one LMDB commit carries (group commit).")
LH_KEY ("gateway/pathway_max",  INT,  "4194304", "0..1099511627776",         "Largest body of the /v1/pathway routes, bytes (room for a pathwayd/content_max content as JSON text); past it 413.")
