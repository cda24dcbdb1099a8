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
LH_KEY ("broker/tap_hwm",      INT,  "10000",                "Tap send high-water mark; past it tap copies are dropped and counted.")
LH_KEY ("broker/max_attempts", INT,  "3",                    "Most deliveries of an idempotent request whose worker died.")

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
