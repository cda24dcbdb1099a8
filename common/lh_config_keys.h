/*  =========================================================================
    lh_config_keys - every configuration key, declared once

    LH_KEY (path, type, default, comment)
        path     "section/key" as in the ZPL file (sections may nest)
        type     STR, INT (decimal, may be negative), BOOL (true/false)
        default  the value used when the file does not set the key
        comment  one line, printed above the key in conf/lakehouse.cfg

    Each service adds its own keys here, grouped by section.
    =========================================================================
*/

//  The bus: where the broker listens and how peers reach it
LH_KEY ("bus/endpoint",        STR,  "tcp://127.0.0.1:5570", "Broker endpoint (ROUTER). Peers in other processes connect here.")
LH_KEY ("bus/inproc",          STR,  "inproc://lh-bus",      "Endpoint for actors inside the broker's own process.")
LH_KEY ("bus/tap",             STR,  "tcp://127.0.0.1:5571", "Tap endpoint (PUB): a copy of every routed message. Empty: no tap.")
LH_KEY ("bus/plain",           BOOL, "true",                 "Allow tcp without CURVE (only honoured on loopback endpoints).")

//  The broker
LH_KEY ("broker/name",         STR,  "lakehouse",            "Broker name, reported by broker.ping and in tap recordings.")
LH_KEY ("broker/hb_ivl",       INT,  "1000",                 "Heartbeat interval dictated to every peer, ms.")
LH_KEY ("broker/hb_live",      INT,  "3",                    "Heartbeat intervals of silence before a peer is dead.")
LH_KEY ("broker/max_msg",      INT,  "16777216",             "Largest message accepted, bytes (header + body).")
LH_KEY ("broker/queue_max",    INT,  "1000",                 "Requests queued per service before 429.")
LH_KEY ("broker/queue_bytes",  INT,  "67108864",             "Bytes queued per service before 429.")
LH_KEY ("broker/retry_after_ms", INT, "100",                 "retry_after_ms advertised with 429 and 503.")
LH_KEY ("broker/sub_queue",    INT,  "1000",                 "Events held for a slow subscriber before the oldest is dropped.")
LH_KEY ("broker/tap_hwm",      INT,  "1000",                 "Tap send high-water mark; past it tap copies are dropped and counted.")
LH_KEY ("broker/max_attempts", INT,  "3",                    "Most deliveries of an idempotent request whose worker died.")
LH_KEY ("broker/restart_grace", INT, "-1",                   "After start, ms during which a request for a not-yet-offered service waits for its workers to re-register instead of 404; -1 = hb_ivl x hb_live, 0 = off.")

//  Data
LH_KEY ("data/dir",            STR,  "./var",                "Data directory (storage, logs, certificates).")

//  Logging
LH_KEY ("log/level",           STR,  "info",                 "Lowest level logged: debug, info, warn, error.")

//  Actors: which ones `lakehouse up` runs, and how many workers each
LH_KEY ("actors/run",          STR,  "*",                    "Actors `lakehouse up` starts: comma-separated names, or * for all.")
LH_KEY ("actors/echo/workers", INT,  "2",                    "Worker threads of the echo service.")
LH_KEY ("actors/echo/tag",     STR,  "",                     "Extra field 'tag' added to echo replies when set (replay tests).")

//  The HTTP gateway (gateway/, docs/http.md)
LH_KEY ("gateway/listen",       STR,  "127.0.0.1:3110",      "HTTP listen address HOST:PORT ([v6]:PORT); port 0 picks a free one. Non-loopback needs a token.")
LH_KEY ("gateway/threads",      INT,  "4",                   "HTTP worker threads (libmicrohttpd epoll thread pool); each holds one bus client.")
LH_KEY ("gateway/conn_max",     INT,  "1024",                "Most open HTTP connections; past it new connections are refused.")
LH_KEY ("gateway/conn_per_ip",  INT,  "256",                 "Most open HTTP connections from one client address; 0 = no limit.")
LH_KEY ("gateway/idle_timeout_s", INT, "30",                 "Close a connection idle (no bytes either way) this long, seconds.")
LH_KEY ("gateway/read_timeout_s", INT, "30",                 "Close a connection whose request (headers and body) has not fully arrived this long after it started, seconds.")
LH_KEY ("gateway/header_max",   INT,  "32768",               "Memory per connection for the request line and headers, bytes; past it 431.")
LH_KEY ("gateway/body_max",     INT,  "1048576",             "Largest request body, bytes, for routes without their own limit; past it 413.")
LH_KEY ("gateway/json_depth",   INT,  "64",                  "Deepest JSON nesting accepted in a request body; past it 400.")
LH_KEY ("gateway/timeout_ms",   INT,  "5000",                "Bus deadline of a request without X-Lakehouse-Timeout-Ms, ms.")
LH_KEY ("gateway/timeout_max_ms", INT, "60000",              "Largest X-Lakehouse-Timeout-Ms honoured; larger values are capped to it.")
LH_KEY ("gateway/token_file",   STR,  "",                    "File of bearer tokens, one per line, first = primary; must be mode 0600. Or env LAKEHOUSE_TOKEN / LAKEHOUSE_TOKENS.")
LH_KEY ("gateway/token_check_ms", INT, "1000",               "How often the token file's mtime is checked for a reload, ms (SIGHUP reloads at once).")
LH_KEY ("gateway/allow",        STR,  "",                    "Client CIDR allow-list, comma-separated (10.0.0.0/8,::1/128); empty = any address. Others get 403.")
LH_KEY ("gateway/health_ms",    INT,  "1000",                "How often GET /health's view of the broker and services is refreshed, ms.")

//  storaged: blobs (SPEC 5.1, docs/storaged.md)
LH_KEY ("actors/storaged/workers", INT, "4",                 "Worker threads of the storaged service.")
LH_KEY ("storaged/backend",     STR,  "fs",                  "Storage backend: fs (files under storaged/dir) or s3.")
LH_KEY ("storaged/dir",         STR,  "",                    "fs backend directory; empty = DATA_DIR/storage.")
LH_KEY ("storaged/cap_default", INT,  "268435456",           "Largest object under a key no storaged/caps prefix matches, bytes (413 past it).")
LH_KEY ("storaged/caps",        STR,  "_vectors/=4294967296", "Per-prefix caps, comma-separated PREFIX=BYTES; the longest matching prefix wins.")
LH_KEY ("storaged/put_slots",   INT,  "4",                   "Concurrent PUTs (puts in progress + open multipart uploads) before 503.")
LH_KEY ("storaged/retry_after_ms", INT, "250",               "retry_after_ms advertised with storaged's 503 (no free PUT slot).")
LH_KEY ("storaged/part_max",    INT,  "8388608",             "Largest put body or upload part, bytes (413 past it); keep it under broker/max_msg.")
LH_KEY ("storaged/get_max",     INT,  "8388608",             "Most bytes one get answers; larger objects are read in ranges.")
LH_KEY ("storaged/upload_ttl_ms", INT, "3600000",            "An upload untouched this long is abandoned: its parts are removed and its PUT slot freed.")
LH_KEY ("storaged/s3_endpoint", STR,  "https://s3.amazonaws.com", "s3 backend: endpoint URL (http://127.0.0.1:9000 for a local MinIO, Ceph, s3rver).")
LH_KEY ("storaged/s3_region",   STR,  "us-east-1",           "s3 backend: region used in the SigV4 signature.")
LH_KEY ("storaged/s3_bucket",   STR,  "",                    "s3 backend: bucket name (required with storaged/backend = s3).")
LH_KEY ("storaged/s3_style",    STR,  "path",                "s3 backend addressing: path (ENDPOINT/BUCKET/KEY) or virtual (BUCKET.HOST/KEY).")
LH_KEY ("storaged/s3_credentials_file", STR, "",             "s3 backend: file (mode 0600) with access_key_id= and secret_access_key= lines; empty = env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.")
LH_KEY ("storaged/s3_timeout_ms", INT, "30000",              "s3 backend: timeout of one HTTP request to the store, ms.")

//  catalogd: dataset manifests (SPEC 5.2, docs/catalogd.md)
LH_KEY ("actors/catalogd/workers", INT, "1",                 "Worker threads of the catalogd service.")
LH_KEY ("catalogd/prefix",      STR,  "_catalog/",           "storaged key prefix under which manifests are persisted.")
LH_KEY ("catalogd/timeout_ms",  INT,  "5000",                "Deadline of each call catalogd makes to storaged, ms.")

//  chatd: LLM routing (SPEC 5.7, docs/chatd.md). Keys never live here: env
//  vars OLLAMA_API_KEY, OPENROUTER_API_KEY, OPENCODE_API_KEY, KIMI_API_KEY or the 0600 chatd/env_file
LH_KEY ("actors/chatd/workers", INT,  "4",                   "Worker threads of the chatd service (each holds one provider call at a time).")
LH_KEY ("chatd/ollama_url",     STR,  "http://127.0.0.1:11434", "Local Ollama base URL (POST BASE/api/chat); empty = not registered.")
LH_KEY ("chatd/ollama_cloud_url", STR, "https://ollama.com", "Ollama Cloud base URL (POST BASE/api/chat, Bearer OLLAMA_API_KEY).")
LH_KEY ("chatd/openrouter_url", STR,  "https://openrouter.ai/api/v1", "OpenRouter base URL (POST BASE/chat/completions, Bearer OPENROUTER_API_KEY).")
LH_KEY ("chatd/opencode_url",   STR,  "https://opencode.ai/zen/v1", "OpenCode base URL (POST BASE/chat/completions, Bearer OPENCODE_API_KEY).")
LH_KEY ("chatd/kimi_url",       STR,  "https://api.moonshot.ai/v1", "Kimi base URL (POST BASE/chat/completions, Bearer KIMI_API_KEY).")
LH_KEY ("chatd/env_file",       STR,  "",                    "File of NAME=value provider keys (mode 0600 required); env vars win over it. Empty = env only.")
LH_KEY ("chatd/timeout_ms",     INT,  "120000",              "Timeout of one provider HTTP request, ms (also capped by the caller's deadline).")
LH_KEY ("chatd/connect_timeout_ms", INT, "5000",             "Timeout to connect to a provider, ms.")
LH_KEY ("chatd/retries",        INT,  "2",                   "Retries after a 429, 5xx or transport error (so at most retries + 1 attempts).")
LH_KEY ("chatd/backoff_ms",     INT,  "250",                 "First retry delay, ms, doubled each retry; a Retry-After header replaces it.")
LH_KEY ("chatd/retry_after_max_ms", INT, "30000",            "Longest Retry-After honoured, ms; a longer one fails the call with 502 at once.")
LH_KEY ("chatd/num_ctx",        INT,  "8192",                "Ollama context window (options.num_ctx), always sent to Ollama.")
LH_KEY ("chatd/think",          BOOL, "false",               "Ollama 'think' flag sent with every Ollama request.")
LH_KEY ("chatd/response_max",   INT,  "8388608",             "Largest provider response accepted, bytes; past it 502.")
LH_KEY ("models/local_fast",    STR,  "qwen2.5:7b",          "Model tier: fast local model. A chat whose model is a tier name uses the tier's model.")
LH_KEY ("models/local_judge",   STR,  "qwen2.5:14b",         "Model tier: local judge.")
LH_KEY ("models/cloud_judge",   STR,  "ollama_cloud/gpt-oss:120b", "Model tier: cloud judge.")
LH_KEY ("models/cloud_review",  STR,  "openrouter/anthropic/claude-sonnet-4", "Model tier: cloud reviewer.")
LH_KEY ("models/frontier_review", STR, "openrouter/openai/gpt-5", "Model tier: frontier reviewer.")
LH_KEY ("models/weak_models",   STR,  "qwen2.5:0.5b,llama3.2:1b", "Models known to be weak (comma-separated), reported by chatd.providers.")

//  validatord: is the model's output real? (SPEC 5.8, docs/validatord.md, docs/session_log.md)
LH_KEY ("actors/validatord/workers", INT, "4",               "Worker threads of the validatord service (iterate holds one for the whole loop).")
LH_KEY ("validatord/roster",    STR,  "",                    "Worker roster, a JSONL file (reloaded when it changes); empty = an empty roster.")
LH_KEY ("validatord/session_log", STR, "sessions/iterate.jsonl", "Session log (JSONL, one row per iterate); relative to data/dir; empty = off.")
LH_KEY ("validatord/chat_timeout_ms", INT, "180000",         "Deadline of each chatd.chat call made by iterate, ms (capped by the caller's deadline).")
LH_KEY ("validatord/max_iterations_cap", INT, "10",          "Largest max_iterations accepted by iterate; above it 400.")
LH_KEY ("validatord/prompt_max_tokens", INT, "8000",         "Bound on an iterate retry prompt, tokens (about 4 characters each); the failed attempt is cut to fit.")

//  storaged's s3 backend, continued (docs/storaged.md "s3 backend")
LH_KEY ("storaged/s3_connect_timeout_ms", INT, "5000",      "s3 backend: timeout to connect to the store, ms.")
LH_KEY ("storaged/s3_part_min", INT, "5242880",             "s3 backend: upload parts are buffered to this many bytes before one S3 UploadPart (S3 wants >= 5 MiB but the last).")
LH_KEY ("storaged/s3_list_heads", INT, "200",               "s3 backend: list HEADs each key (16 at a time) for its SHA-256 ETag, at most this many keys per page; 0 = no HEADs, S3's own ETags.")

//  ingestd: CSV to tables (SPEC 5.3, docs/ingestd.md)
LH_KEY ("actors/ingestd/workers", INT, "2",                  "Worker threads of the ingestd service (each runs one ingest at a time).")
LH_KEY ("ingestd/max_ingest_bytes", INT, "268435456",        "Largest CSV source accepted, bytes; larger ones are refused with 413.")
LH_KEY ("ingestd/record_max",   INT,  "16777216",            "Longest CSV record (one row, all its fields), bytes; a longer one is refused with 400.")
LH_KEY ("ingestd/read_chunk",   INT,  "4194304",             "Bytes asked of storaged per get while reading the source (storaged may answer fewer).")
LH_KEY ("ingestd/timeout_ms",   INT,  "30000",               "Deadline of each call ingestd makes to storaged or catalogd, ms.")
LH_KEY ("ingestd/tmp_dir",      STR,  "",                    "Where table files are built before upload; empty = DATA_DIR/ingestd.")
LH_KEY ("ingestd/page_size",    INT,  "8192",                "SQLite page size of the table files, bytes (512..65536, a power of two).")
LH_KEY ("ingestd/cache_kib",    INT,  "8192",                "SQLite page cache while building a table file, KiB (bounds ingestd's memory).")
LH_KEY ("ingestd/index_max",    INT,  "2",                   "Covering indexes built per table for low-cardinality text columns (0 = none).")
LH_KEY ("ingestd/index_distinct_max", INT, "64",             "A text column is indexed only if it has at most this many distinct values.")

//  queryd: SQL over the catalogued datasets (SPEC 5.4, docs/queryd.md)
LH_KEY ("actors/queryd/workers", INT, "2",                   "Worker threads of the queryd service (each with its own SQLite connection).")
LH_KEY ("queryd/timeout_ms",    INT,  "10000",               "Statement timeout, ms (also capped by the caller's deadline); past it 504.")
LH_KEY ("queryd/row_limit",     INT,  "1000",                "Rows returned when the request gives no limit; more rows set truncated.")
LH_KEY ("queryd/row_max",       INT,  "100000",              "Largest limit a request may ask for; larger ones are capped to it.")
LH_KEY ("queryd/reply_max",     INT,  "8388608",             "Largest reply, bytes; rows past it are cut and truncated is set. Keep it under broker/max_msg.")
LH_KEY ("queryd/cache_dir",     STR,  "",                    "Local cache of dataset files, named by content hash; empty = DATA_DIR/queryd.")
LH_KEY ("queryd/attach_max",    INT,  "10",                  "Datasets attached at once per connection (Debian's SQLite allows 10); least recently used are detached.")
LH_KEY ("queryd/refresh_ms",    INT,  "30000",               "Full catalog refresh period, ms (catalog.changed events apply in between).")
LH_KEY ("queryd/storage_timeout_ms", INT, "30000",           "Deadline of each call queryd makes to catalogd or storaged, ms.")
LH_KEY ("queryd/mmap_bytes",    INT,  "268435456",           "SQLite mmap_size of each attached dataset file, bytes (0 = no mmap).")
